"""Test-wide set-up: 8 fake CPU devices (must happen before jax is imported anywhere)."""

import os

# Added to whatever XLA_FLAGS already holds (GPU machines often set some), replacing only a device
# count given there.
_FLAGS = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
os.environ["XLA_FLAGS"] = " ".join(_FLAGS + ["--xla_force_host_platform_device_count=8"])
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
