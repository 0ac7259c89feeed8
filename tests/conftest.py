"""Test-wide set-up: 8 fake CPU devices (must happen before jax is imported anywhere)."""

import os

# Added to whatever XLA_FLAGS already holds (GPU machines often set some), replacing only a device
# count given there.
_FLAGS = [
    f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")
]
os.environ["XLA_FLAGS"] = " ".join(_FLAGS + ["--xla_force_host_platform_device_count=8"])
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Hypothesis profiles for the fuzz tests (test_fuzz_*.py): "ci" (default) is bounded and
# derandomised so that CI is reproducible; HYPOTHESIS_PROFILE=long explores ~30x more inputs.
try:
  from hypothesis import settings as _settings
except ImportError:  # only the fuzz tests need it (the [test] extra installs it)
  _settings = None
if _settings is not None:
  _settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, database=None, print_blob=True)
  _settings.register_profile("long", max_examples=2000, deadline=None)
  _settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
