"""The malloc policy (rrpo_jax/malloc.py): which choice applies it, the bad-value error, the CPU-only
decision, and the trainer's entry point setting it before anything else."""

import os
import platform
import subprocess
import sys

import pytest

from rrpo_jax import malloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP_CALLS = [(-8, 1), (-4, 0), (-1, -1)]  # M_ARENA_MAX 1, M_MMAP_MAX 0, M_TRIM_THRESHOLD "never"


class FakeLibc:

  def __init__(self, result=1):
    self.calls, self.result = [], result

  def mallopt(self, param, value):
    self.calls.append((param, value))
    return self.result


@pytest.fixture
def libc(monkeypatch):
  """A recording stand-in for glibc's mallopt on a Linux / glibc platform; RRPO_JAX_MALLOC unset."""
  fake = FakeLibc()
  monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name: fake)
  monkeypatch.setattr(malloc.platform, "system", lambda: "Linux")
  monkeypatch.setattr(malloc.platform, "libc_ver", lambda: ("glibc", "2.35"))
  monkeypatch.delenv(malloc.ENV, raising=False)
  return fake


def test_choices(libc, monkeypatch):
  assert not malloc.configure("system") and libc.calls == []
  assert malloc.configure("keep") and libc.calls == KEEP_CALLS
  libc.calls.clear()
  monkeypatch.setattr(malloc, "cpu_only", lambda: True)
  assert not malloc.configure() and libc.calls == []  # RRPO_JAX_MALLOC unset: glibc's default (opt-in)
  monkeypatch.setenv(malloc.ENV, "auto")
  assert malloc.configure() and libc.calls == KEEP_CALLS  # auto on a CPU-only JAX: keep
  libc.calls.clear()
  monkeypatch.setattr(malloc, "cpu_only", lambda: False)
  assert not malloc.configure() and libc.calls == []  # auto with an accelerator plugin: system
  # the environment overrides "auto" only
  monkeypatch.setenv(malloc.ENV, "keep")
  assert malloc.configure("auto") and libc.calls == KEEP_CALLS
  monkeypatch.setenv(malloc.ENV, "system")
  monkeypatch.setattr(malloc, "cpu_only", lambda: True)
  libc.calls.clear()
  assert not malloc.configure() and libc.calls == []
  assert malloc.configure("keep") and libc.calls == KEEP_CALLS


def test_not_applied_off_glibc_or_when_mallopt_refuses(libc, monkeypatch):
  libc.result = 0  # mallopt returns 0 on failure
  assert not malloc.configure("keep")
  libc.calls.clear()
  monkeypatch.setattr(malloc.platform, "libc_ver", lambda: ("", ""))  # musl, for one
  assert not malloc.configure("keep") and libc.calls == []
  monkeypatch.setattr(malloc.platform, "system", lambda: "Darwin")
  assert not malloc.configure("keep") and libc.calls == []


def test_bad_values_name_the_variable(libc, monkeypatch):
  with pytest.raises(ValueError, match=r"malloc policy 'fast': use one of auto, keep, system"):
    malloc.configure("fast")
  monkeypatch.setenv(malloc.ENV, "fast")
  with pytest.raises(ValueError, match=r"RRPO_JAX_MALLOC='fast': use one of auto, keep, system"):
    malloc.configure()
  assert libc.calls == []
  monkeypatch.setenv(malloc.ENV, "")  # set but empty: as unset
  monkeypatch.setattr(malloc, "cpu_only", lambda: True)
  assert not malloc.configure() and libc.calls == []


class FakeDist:

  def __init__(self, name):
    self.metadata = {"Name": name}


@pytest.mark.parametrize(
    "platforms,installed,expected",
    [
        ("cpu", ["jax-cuda12-plugin"], True),  # JAX_PLATFORMS decides when set
        ("cpu,cuda", [], True),
        ("cuda,cpu", [], False),
        ("tpu", [], False),
        ("", ["numpy", "jax", "jaxlib"], True),
        ("", ["jax", "jax-cuda12-plugin", "jax-cuda12-pjrt"], False),
        ("", ["jax", "jax_cuda13_plugin"], False),
        ("", ["jax", "libtpu"], False),
        ("", ["jax", "jax-rocm60-plugin"], False),
    ],
)
def test_cpu_only(monkeypatch, platforms, installed, expected):
  monkeypatch.setenv("JAX_PLATFORMS", platforms)
  monkeypatch.setattr(malloc.importlib.metadata, "distributions", lambda: [FakeDist(n) for n in installed])
  assert malloc.cpu_only() is expected


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the policy is glibc's mallopt"
)
def test_glibc_accepts_the_policy():
  # in a fresh process, so that this one's allocator is left as it is
  code = "from rrpo_jax import malloc; print(malloc.configure('keep'), malloc.configure('system'))"
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
  assert out.stdout.split() == ["True", "False"]


def test_entry_point_sets_the_policy_first(monkeypatch, capsys, tmp_path):
  from absl import flags  # pylint: disable=import-outside-toplevel

  from rrpo_jax import main as entry  # pylint: disable=import-outside-toplevel
  from rrpo_jax.train import trainer  # pylint: disable=import-outside-toplevel

  events = []
  monkeypatch.setattr(malloc, "configure", lambda choice="auto": events.append(("malloc", choice)) or True)
  monkeypatch.setattr(entry, "init_distributed", lambda dist: events.append(("distributed", dist.enabled)))
  monkeypatch.setattr(trainer, "train_and_evaluate", lambda config, workdir: events.append(("train", workdir)))
  flags.FLAGS(["main", f"--config={ROOT}/configs/smoke.py", f"--workdir={tmp_path}"])
  try:
    entry.main(["main"])
    assert events == [("malloc", "auto"), ("distributed", False), ("train", str(tmp_path))]

    def bad(choice="auto"):
      raise ValueError("RRPO_JAX_MALLOC='fast': use one of auto, keep, system")

    events.clear()
    monkeypatch.setattr(malloc, "configure", bad)
    with pytest.raises(SystemExit) as exit_info:
      entry.main(["main"])
    assert exit_info.value.code == 1 and events == []
    assert capsys.readouterr().err.strip() == "rrpo_jax: RRPO_JAX_MALLOC='fast': use one of auto, keep, system"
  finally:
    flags.FLAGS.unparse_flags()
