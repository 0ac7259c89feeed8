"""Paper-scale reranker steps, measured on whatever backend JAX finds: bf16 compute, fp32 params.

  python bench/gpu_step.py           # the paper-scale rows (one H100: under 10 minutes, --budget_s)
  python bench/gpu_step.py --tiny    # the same code at toy sizes, on CPU in well under a minute

Three families at their real configs with random weights (no download), shapes as Q queries x N
candidates x L tokens (--qwen3 / --modernbert / --minilm Q,N,L change them), run in this order:
  qwen3       Qwen3-Reranker-0.6B: 28 layers x 1024, 16 query / 8 kv heads of 128, SwiGLU 3072, vocab
              151669, tied embeddings; 8 x 100 x 384 (config_variants.qwen3_scale's update);
  modernbert  ModernBERT-base (gte-reranker-modernbert-base): 22 x 768, 12 heads, GeGLU 1152, vocab
              50368, every third layer global, the others a 128-token window; 32 x 100 x 256
              (config_variants.modernbert_scale's update);
  minilm      BERT, 6 x 384, 12 heads, FFN 1536, vocab 30522 (all-MiniLM-L6-v2), at bench/reranker.py's
              "32 x 256": 32 pairs of 256 tokens, laid out as that script's train step lays them,
              4 queries x 8 candidates (--minilm 64,100,256: paper_scale's update).
Rows per family:
  forward  the eval-mode scoring forward (the family module's scores with key=None, jitted: what
           Reranker.apply runs) over all Q x N pairs, on one device; remat changes nothing without a
           backward, so it runs once;
  update   one RRPO update: the real rrpo_jax.core.update.make_update_step on a sharding.DataParallel
           (shard_map) over all devices (Q rounded up to a multiple of them), update.make_optimizer's
           AdamW (clipping, paper_scale's schedule; no accumulation: qwen3_scale accumulates 8 such
           calls per optimiser step), dropout --dropout (the trainer's model.dropout), k=3 actions and
           fixed rewards, values and reference log-probs (the update's machinery, no reader); per-layer
           remat on and off (--remat).
Before an update runs, XLA's memory estimate of its compiled step (temp + arguments + outputs -
donated) is checked against the device (memory_stats()['bytes_limit'], or --mem_limit_gib): a step
that does not fit in 90% of it runs with fewer queries (temp memory taken as linear in Q; said in the
row's note), or is reported "oom" with the estimate.

Per row: seconds per call (median of --repeats, alternated with the GEMM below as bench/reranker.py
alternates its sides); pairs/s = Q x N / seconds; the model's TFLOP/s; GEMM, the peak: a jitted bf16 GEMM
of --gemm^3 on device 0, measured in the same process, times the devices the step runs on (one for
the forward); MFU = model TFLOP/s / peak; peak device memory = max over devices of memory_stats()
['peak_bytes_in_use'] ("n/a" where the backend keeps none, as XLA:CPU); compile seconds. The note
of a no-remat row gives its pairs/s as a ratio of the remat row's. JAX cannot reset the peak, so
each family runs in two child processes of this script: forward then update with remat (whose peak
is above the forward's), and update without remat (--isolate auto: so on any accelerator; on a
CPU-only JAX, with no peak to keep apart, all rows share one child). XLA_PYTHON_CLIENT_MEM_FRACTION
defaults to 0.95 here (JAX's 0.75 would leave a fifth of an H100 unused). --tiny: toy layer counts,
widths and shapes through the same code, the kernels GPUs take (--kernels defaults to library there)
and LLVM at optimisation level 0 (the same HLO, half XLA:CPU's compile time). --kernels is
config.kernels' switch (rrpo_jax/core/cpu_kernels.select), applied in each child before it traces.

Model FLOPs, counted analytically per pair of L tokens, forward:
  F = layers x (2 L W + 4 L^2 A)
  W = the matmul weights of one layer (its multiply-adds per token; 2 L W = "2 x params x tokens"):
        BERT        4 H^2 + 2 H Fi                    Q, K, V, O; FFN in and out
        ModernBERT  4 H^2 + 3 H Fi                    Wqkv, Wo; GeGLU Wi [H, 2 Fi] and Wo [Fi, H]
        Qwen3       H d (2 h + 2 h_kv) + 3 H Fi       q, o [h d]; k, v [h_kv d]; gate, up, down
  A = the attention width (H for the BERTs, h d for Qwen3): QK^T and PV are 2 L^2 A FLOPs each.
  Not counted: embedding lookups (tables, no products), norms, softmax, activations, the head (once
  per pair), the optimiser. Causal (Qwen3) and windowed (ModernBERT) attention count the full
  L x L: our modules multiply all of it and mask. The update counts 3 F per pair (backward = 2 x
  forward); remat recomputes the forward on top (about 4 F executed), which MFU (model FLOPs, not
  hardware FLOPs) shows as a lower share.

Imports: numpy and the standard library in the parent; in the children jax, flax, optax and the
project's update, sharding, objective, plackett_luce, kernels, registry, errors, modeling*, malloc modules
(tests/test_bench_gpu_step.py runs rows with the project's other dependencies, transformers, torch
and orbax blocked). rrpo_jax.core.update imports rax at the top for make_sft_step's loss, which this
script never calls; where rax is missing a stub module stands in for it (any use raises ImportError:
`pip install rax`). The last line gives each family's update MFU (remat on) and its no-remat speed
as a ratio of the remat one, beginning `qwen3_update_mfu=...`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np

os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")  # before any child starts JAX
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

FAMILIES = ("qwen3", "modernbert", "minilm")  # run order: the last line's row first
SHAPES = {"minilm": "4,8,256", "modernbert": "32,100,256", "qwen3": "8,100,384"}  # Q,N,L
TINY_SHAPES = {"minilm": "2,4,32", "modernbert": "2,8,32", "qwen3": "2,8,40"}
# Config fields besides the defaults of each family's config class (the defaults are the real sizes:
# CrossEncoderConfig = all-MiniLM-L6-v2, ModernBertConfig = ModernBERT-base, Qwen3RerankerConfig =
# Qwen3-0.6B but for the reranker's vocabulary).
REAL = {"minilm": {}, "modernbert": {}, "qwen3": {"vocab_size": 151669}}
TINY = {
    "minilm": dict(vocab_size=512, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64),
    "modernbert": dict(
        vocab_size=512,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=48,
        global_attn_every_n_layers=2,  # a global and a sliding-window layer
        local_attention=16,
        pad_token_id=0,
    ),
    "qwen3": dict(
        vocab_size=512,
        hidden_size=32,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        intermediate_size=64,
        yes_id=5,
        no_id=6,
        pad_token_id=0,
    ),
}
GIB = 2**30


# ---------------------------------------------------------------- model FLOPs


def layer_weights(family: str, cfg) -> int:
  """W: the matmul weights of one layer (multiply-adds per token), as in the module docstring."""
  h, fi = cfg.hidden_size, cfg.intermediate_size
  if family == "minilm":
    return 4 * h * h + 2 * h * fi
  if family == "modernbert":
    return 4 * h * h + 3 * h * fi
  return h * cfg.head_dim * (2 * cfg.num_heads + 2 * cfg.num_kv_heads) + 3 * h * fi


def forward_flops(family: str, cfg, length: int) -> int:
  """F: model FLOPs of one pair's forward, layers x (2 L W + 4 L^2 A)."""
  width = cfg.num_heads * cfg.head_dim if family == "qwen3" else cfg.hidden_size
  return cfg.num_layers * (2 * length * layer_weights(family, cfg) + 4 * length * length * width)


def fit_queries(queries: int, *, temp: float, fixed: float, limit: float, devices: int, headroom: float = 0.9) -> int:
  """The most queries (<= `queries`, a multiple of `devices`) whose step fits headroom x limit bytes,
  given XLA's estimate at `queries`: temp bytes (taken as linear in the queries) + fixed bytes
  (arguments + outputs - donated: params, optimiser state, batch). 0 when not even `devices` fit."""
  if fixed + temp <= headroom * limit:
    return queries
  q = int((headroom * limit - fixed) // (temp / queries)) if temp > 0 else 0
  return max(min(q, queries) // devices * devices, 0)


# ---------------------------------------------------------------- the child: one process, some rows


def _import_rax_or_stub() -> None:
  """rax if installed, else a stub `rax` module whose attributes raise ImportError (rrpo_jax.core.update
  imports rax for make_sft_step only, which this script never calls)."""
  try:
    import rax  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    stub = types.ModuleType("rax", "stand-in for a missing rax (bench/gpu_step.py): `pip install rax`")

    def missing(name):
      raise ImportError(f"rax.{name}: rax is not installed (`pip install rax`); bench/gpu_step.py stubbed it")

    stub.__getattr__ = missing  # type: ignore[attr-defined]
    sys.modules["rax"] = stub


def _modules():
  """(jax, jnp, model modules by family, update, sharding): everything the rows import."""
  _import_rax_or_stub()
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from rrpo_jax import malloc
  from rrpo_jax.models import cross_encoder
  from rrpo_jax.models import modernbert
  from rrpo_jax.models import qwen3  # pylint: disable=import-outside-toplevel
  from rrpo_jax.core import sharding
  from rrpo_jax.core import update  # pylint: disable=import-outside-toplevel

  malloc.configure()  # the trainer's malloc policy (XLA:CPU), before JAX's first computation
  models = {"minilm": cross_encoder, "modernbert": modernbert, "qwen3": qwen3}
  return jax, jnp, models, update, sharding


def family_config(family: str, *, tiny: bool, dropout: float, remat: bool):
  """The family's model config: real (or tiny) sizes, bf16 compute, fp32 params."""
  _modules()
  from rrpo_jax.models.cross_encoder import CrossEncoderConfig  # pylint: disable=import-outside-toplevel
  from rrpo_jax.models.modernbert import ModernBertConfig  # pylint: disable=import-outside-toplevel
  from rrpo_jax.models.qwen3 import Qwen3RerankerConfig  # pylint: disable=import-outside-toplevel

  cls = {"minilm": CrossEncoderConfig, "modernbert": ModernBertConfig, "qwen3": Qwen3RerankerConfig}[family]
  sizes = (TINY if tiny else REAL)[family]
  return cls(**sizes, hidden_dropout=dropout, attention_dropout=dropout, dtype="bfloat16", remat=remat)


def make_inputs(family: str, cfg, q: int, n: int, length: int, seed: int = 0) -> dict:
  """Random token ids int32[Q, N, L] without padding (BERT: token type 1 after the first quarter)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(10, cfg.vocab_size, (q, n, length)).astype(np.int32)
  types_ = (np.arange(length) >= length // 4).astype(np.int32) if family == "minilm" else np.zeros(length, np.int32)
  return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.broadcast_to(types_, ids.shape)}


def alternate(fns, repeats: int) -> list[float]:
  """Median seconds of each fn (each blocks until its outputs are ready), run alternately."""
  times: list[list[float]] = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      t = time.perf_counter()
      fn()
      times[i].append(time.perf_counter() - t)
  return [float(np.median(t)) for t in times]


class Gemm:
  """A jitted bf16 [g, g] x [g, g] product on one device, run `calls` times per timing."""

  def __init__(self, g: int, device, calls: int = 4):
    jax, jnp, _, _, _ = _modules()
    self.flops = 2.0 * g**3 * calls
    self.calls = calls
    a = np.random.default_rng(1).standard_normal((g, g), np.float32)
    self.a = jax.device_put(jnp.asarray(a, jnp.bfloat16), device)
    self.fn = jax.jit(jnp.dot)
    self.fn(self.a, self.a).block_until_ready()

  def __call__(self):
    for _ in range(self.calls):
      out = self.fn(self.a, self.a)
    out.block_until_ready()


def peak_memory(devices) -> float | None:
  """max over devices of memory_stats()['peak_bytes_in_use'] (bytes), None where there are none."""
  peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in devices]
  return float(max(peaks)) if peaks and all(p is not None for p in peaks) else None


def memory_limit(devices, override_gib: float) -> float | None:
  """Bytes one device holds: --mem_limit_gib, else memory_stats()['bytes_limit'], else None (no check)."""
  if override_gib > 0:
    return override_gib * GIB
  limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
  return float(min(limits)) if limits and all(x for x in limits) else None


class KeepMapped:
  """Wraps a sharding.DataParallel and keeps the jitted function its `map` returns (the update
  step's), so the step can be lowered and compiled ahead of its first call: XLA's memory estimate is
  read before anything runs, and the call reuses that compilation."""

  def __init__(self, dp):
    self.dp, self.mapped = dp, None

  def __getattr__(self, name):
    return getattr(self.dp, name)

  def map(self, fn, **kw):
    self.mapped = self.dp.map(fn, **kw)
    return self.mapped


_PARAMS: dict = {}


def host_params(family: str, cfg):
  """The family's random fp32 params as numpy (init_params once per process: remat and dropout do
  not change them)."""
  if family not in _PARAMS:
    jax, _, models, _, _ = _modules()
    _PARAMS[family] = jax.tree.map(np.asarray, models[family].init_params(cfg, jax.random.key(0)))
  return _PARAMS[family]


def _row(family, step, remat, shape, **kw) -> dict:
  row = dict(family=family, step=step, remat=remat, shape=list(shape), error=None, note="")
  row.update(kw)
  return row


def _error(e: BaseException) -> str:
  text = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
  return "oom: " + text[:160] if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower() else text[:200]


def forward_row(args, family: str, shape) -> dict:
  """Eval-mode scoring forward on device 0, alternated with the GEMM."""
  jax, _, models, _, _ = _modules()
  q, n, length = shape
  cfg = family_config(family, tiny=args.tiny, dropout=args.dropout, remat=False)
  module, dev = models[family], jax.devices()[0]
  params = jax.device_put(host_params(family, cfg), dev)
  inputs = jax.device_put(make_inputs(family, cfg, q, n, length), dev)
  fwd = jax.jit(lambda p, i, m, t: module.scores(cfg, p, i, m, t))
  start = time.perf_counter()
  run = fwd.lower(params, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]).compile()
  compile_s = time.perf_counter() - start
  out = run(params, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
  if not np.all(np.isfinite(np.asarray(out, np.float32))):
    raise FloatingPointError("non-finite scores")
  gemm = Gemm(args.gemm, dev)
  t_fwd, t_gemm = alternate(
      [
          lambda: run(
              params, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
          ).block_until_ready(),
          gemm,
      ],
      args.repeats,
  )
  flops = q * n * forward_flops(family, cfg, length)
  peak = gemm.flops / t_gemm
  return _row(
      family,
      "forward",
      None,
      shape,
      seconds=t_fwd,
      pairs_per_s=q * n / t_fwd,
      tflops=flops / t_fwd / 1e12,
      peak_tflops=peak / 1e12,
      mfu=flops / t_fwd / peak,
      peak_gib=None if (p := peak_memory([dev])) is None else p / GIB,
      compile_s=compile_s,
      note="1 device",
  )


def update_row(args, family: str, shape, remat: bool) -> dict:
  """One RRPO update (update.make_update_step) on all devices, alternated with the GEMM."""
  jax, _, models, U, sharding = _modules()
  q, n, length = shape
  cfg = family_config(family, tiny=args.tiny, dropout=args.dropout, remat=remat)
  module = models[family]
  devices = jax.devices()
  k = min(args.k, n)

  def apply_fn(p, inputs, *, key):  # Reranker.apply on padded inputs
    return module.scores(cfg, p, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], key=key)

  def batch_of(queries):
    rng = np.random.default_rng(0)
    return U.RolloutBatch(
        inputs=make_inputs(family, cfg, queries, n, length),
        where=np.ones((queries, n), bool),
        actions=np.argsort(rng.standard_normal((queries, n)), axis=-1)[:, :k].astype(np.int32),
        # a uniform Plackett-Luce reference: log 1 / (N - j) at pick j
        ref_log_prob=np.broadcast_to(-np.log(n - np.arange(k)), (queries, k)).astype(np.float32),
        rewards=rng.integers(0, 2, (queries, k)).astype(np.float32),
        values=rng.random((queries, k)).astype(np.float32),
        query_mask=np.ones((queries,), bool),
    )

  tx = U.make_optimizer(learning_rate=5e-6, total_steps=3000, warmup_steps=100)  # paper_scale's schedule
  dp = KeepMapped(sharding.DataParallel("shard_map", devices))
  step = U.make_update_step(apply_fn, tx, dp, beta=0.01)
  state = dp.replicate(U.TrainState.create(host_params(family, cfg), tx, window_capacity=4096))
  key_data = lambda key: np.asarray(jax.random.key_data(key))  # noqa: E731  as update() passes it

  note, est = [], None
  start = time.perf_counter()
  sharded = dp.shard(batch_of(q))
  mem = dp.mapped.lower(state, sharded, key_data(jax.random.key(0))).compile().memory_analysis()
  compile_s = time.perf_counter() - start
  limit = memory_limit(devices, args.mem_limit_gib)
  if mem is not None:
    temp = float(mem.temp_size_in_bytes)
    fixed = float(mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes)
    est = (temp + fixed) / GIB
    fit = q if limit is None else fit_queries(q, temp=temp, fixed=fixed, limit=limit, devices=len(devices))
    if fit == 0:
      return _row(family, "update", remat, shape, error=f"oom: XLA estimate {est:.1f} GiB > {limit / GIB:.1f} GiB")
    if fit < q:
      note.append(f"Q={q} needs {est:.1f} GiB (XLA) > {limit / GIB:.1f}: ran Q={fit}")
      q, shape = fit, (fit, n, length)
      start = time.perf_counter()
      sharded = dp.shard(batch_of(q))
      mem = dp.mapped.lower(state, sharded, key_data(jax.random.key(0))).compile().memory_analysis()
      compile_s += time.perf_counter() - start
      est = (
          mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
      ) / GIB
  box, keys = [state], itertools.count(1)

  def one_step():
    box[0], metrics = step(box[0], sharded, jax.random.key(next(keys)))
    jax.block_until_ready(metrics)
    return metrics

  metrics = one_step()  # compiled above: this call runs it
  loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
  if not (math.isfinite(loss) and math.isfinite(grad_norm)):
    raise FloatingPointError(f"non-finite loss {loss} or grad_norm {grad_norm}")
  gemm = Gemm(args.gemm, devices[0])
  t_step, t_gemm = alternate([one_step, gemm], args.repeats)
  flops = 3 * q * n * forward_flops(family, cfg, length)
  peak = len(devices) * gemm.flops / t_gemm
  if est is not None:
    note.insert(0, f"XLA est {est:.2f} GiB")
  note.append(f"{len(devices)} device{'s' if len(devices) > 1 else ''}")
  return _row(
      family,
      "update",
      remat,
      shape,
      seconds=t_step,
      pairs_per_s=q * n / t_step,
      tflops=flops / t_step / 1e12,
      peak_tflops=peak / 1e12,
      mfu=flops / t_step / peak,
      peak_gib=None if (p := peak_memory(devices)) is None else p / GIB,
      compile_s=compile_s,
      loss=loss,
      note="; ".join(note),
  )


def child(args) -> None:
  """Runs the rows of --child `family:part,part;family:part` (parts: forward, update_remat,
  update_noremat), printing the device and then one JSON line per row."""
  jax, _, _, _, _ = _modules()
  from rrpo_jax.core import cpu_kernels, kernels  # pylint: disable=import-outside-toplevel

  kernels.use(cpu_kernels.select(args.kernels))  # as rrpo_jax.main: once, before anything is traced
  devices = jax.devices()
  print(
      "DEVICE "
      + json.dumps(
          dict(kind=devices[0].device_kind, platform=devices[0].platform, count=len(devices), jax=jax.__version__)
      ),
      flush=True,
  )
  for family, step, remat in spec_rows(args.child):
    shape = parse_shape(getattr(args, family))
    try:
      if step == "forward":
        row = forward_row(args, family, shape)
      else:
        q = -(-shape[0] // len(devices)) * len(devices)  # a multiple of the device count
        row = update_row(args, family, (q,) + shape[1:], remat)
        if q != shape[0]:
          row["note"] += f"; Q rounded up to {q} for {len(devices)} devices"
    except Exception as e:  # pylint: disable=broad-except  (a row's failure is that row's result)
      row = _row(family, step, remat, shape, error=_error(e))
    if args.child_shared and row.get("peak_gib") is not None:
      row["peak_gib"], row["note"] = None, row["note"] + "; peak not isolated (--isolate off)"
    print("ROW " + json.dumps(row), flush=True)


# ---------------------------------------------------------------- the parent: runs the children, prints the table


def parse_shape(text: str) -> tuple[int, int, int]:
  q, n, length = (int(x) for x in text.split(","))
  return q, n, length


def groups(families: list[str], remats: list[str], isolate: bool) -> list[str]:
  """The --child specs: per family, forward + update with remat, then update without (isolate);
  else every row in one child. remats: "on" / "off", the update rows to run."""
  per = ["forward" + (",update_remat" if "on" in remats else "")] + (["update_noremat"] if "off" in remats else [])
  if isolate:
    return [f"{f}:{parts}" for f in families for parts in per]
  return [";".join(f"{f}:{','.join(per)}" for f in families)]


def spec_rows(spec: str) -> list[tuple[str, str, bool | None]]:
  """(family, step, remat) of each row a --child spec asks for."""
  out = []
  for group in spec.split(";"):
    family, parts = group.split(":")
    for part in parts.split(","):
      out.append((family,) + (("forward", None) if part == "forward" else ("update", part == "update_remat")))
  return out


def run_child(argv: list[str], spec: str, timeout: float, *, shared: bool) -> tuple[dict | None, list[dict]]:
  """(device line, rows) of one child process; rows a crashed child did not print carry its last
  stderr line."""
  cmd = [sys.executable, os.path.abspath(__file__)] + argv + ["--child", spec] + (["--child_shared"] if shared else [])
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    out, err = proc.stdout, proc.stderr
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    err = f"timed out after {timeout:.0f} s"
  device, rows = None, []
  for line in out.splitlines():
    if line.startswith("DEVICE "):
      device = json.loads(line[7:])
    elif line.startswith("ROW "):
      rows.append(json.loads(line[4:]))
  done = {(r["family"], r["step"], r["remat"]) for r in rows}
  last = [x for x in err.strip().splitlines() if x.strip()][-1:] or ["no output"]
  for family, step, remat in spec_rows(spec):
    if (family, step, remat) not in done:
      rows.append(_row(family, step, remat, (0, 0, 0), error=f"child failed: {last[0][:160]}"))
  return device, rows


HEADER = (
    f"{'family':<10} {'step':<7} {'remat':<5} {'QxNxL':<11} {'s/call':>8} {'pairs/s':>9} {'TFLOP/s':>8} "
    f"{'GEMM':>8} {'MFU':>6} {'mem GiB':>8} {'compile':>8}  note"
)


def format_row(row: dict) -> str:
  remat = "-" if row["remat"] is None else ("on" if row["remat"] else "off")
  shape = "x".join(str(x) for x in row["shape"])
  head = f"{row['family']:<10} {row['step']:<7} {remat:<5} {shape:<11}"
  if row["error"]:
    return f"{head} {'-':>8} {'-':>9} {'-':>8} {'-':>8} {'-':>6} {'-':>8} {'-':>8}  {row['error']}"
  mem = "n/a" if row.get("peak_gib") is None else f"{row['peak_gib']:.2f}"
  return (
      f"{head} {row['seconds']:8.4g} {row['pairs_per_s']:9.1f} {row['tflops']:8.4g} {row['peak_tflops']:8.4g} "
      f"{row['mfu']:6.3g} {mem:>8} {row['compile_s']:8.1f}  {row['note']}"
  )


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tiny", action="store_true", help="toy sizes and shapes, the same code (CPU, seconds)")
  p.add_argument("--families", default=",".join(FAMILIES), help="comma list of " + ", ".join(FAMILIES))
  for family in FAMILIES:
    p.add_argument(f"--{family}", default=None, help=f"Q,N,L (default {SHAPES[family]}; --tiny {TINY_SHAPES[family]})")
  p.add_argument("--k", type=int, default=3, help="actions per query (k_train)")
  p.add_argument("--dropout", type=float, default=0.1, help="hidden / attention dropout of the update's policy")
  p.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 3; --tiny 2)")
  p.add_argument("--gemm", type=int, default=None, help="bf16 GEMM size for the peak (default 8192; --tiny 256)")
  p.add_argument("--mem_limit_gib", type=float, default=0.0, help="device memory for the fit check (0: the device's)")
  p.add_argument("--remat", default="on,off", help="update rows to run: on, off or both")
  p.add_argument(
      "--budget_s",
      type=float,
      default=570.0,
      help="wall-clock seconds for the whole run: a child still running then is stopped, rows not reached "
      "are reported skipped (one H100: about 10 minutes for everything)",
  )
  p.add_argument(
      "--isolate",
      default="auto",
      choices=("auto", "on", "off"),
      help="child processes apart for each family's no-remat update (peak memory per row); auto: on unless JAX "
      "can only run on CPU (no peak memory there)",
  )
  p.add_argument(
      "--kernels",
      default=None,
      choices=("auto", "cpu", "library"),
      help="the kernel set, as config.kernels (default auto; --tiny library)",
  )
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  p.add_argument("--child_shared", action="store_true", help=argparse.SUPPRESS)
  raw = sys.argv[1:] if argv is None else argv
  args = p.parse_args(raw)
  for family in FAMILIES:
    if getattr(args, family) is None:
      setattr(args, family, (TINY_SHAPES if args.tiny else SHAPES)[family])
  args.repeats = args.repeats or (2 if args.tiny else 3)
  args.gemm = args.gemm or (256 if args.tiny else 8192)
  # --tiny: the kernels GPUs and TPUs take (rrpo_jax/core/kernels.py's LIBRARY), not XLA:CPU's tricks.
  args.kernels = args.kernels or ("library" if args.tiny else "auto")
  if args.tiny:
    # LLVM without its optimisations (the same HLO, half the compile time of these toy programs).
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
  if args.child:
    return child(args)

  families = [f for f in args.families.split(",") if f]
  unknown = set(families) - set(FAMILIES)
  if unknown:
    p.error(f"unknown families {sorted(unknown)}: choose from {FAMILIES}")
  from rrpo_jax import malloc  # pylint: disable=import-outside-toplevel  (no JAX: the parent never starts it)

  isolate = args.isolate == "on" or (args.isolate == "auto" and not malloc.cpu_only())
  remats = [r for r in args.remat.split(",") if r]
  if set(remats) - {"on", "off"}:
    p.error(f"--remat takes on, off or on,off, got {args.remat!r}")
  start, rows, header_done = time.perf_counter(), {}, False
  for spec in groups(families, remats, isolate):
    left = args.budget_s - (time.perf_counter() - start)
    if left < 30:
      device, got = None, [
          _row(*r, (0, 0, 0), error=f"skipped: --budget_s {args.budget_s:.0f} spent") for r in spec_rows(spec)
      ]
    else:
      device, got = run_child(raw, spec, left, shared=not isolate)
    if not header_done:
      if device:
        print(
            f"{device['kind']} x{device['count']} ({device['platform']}), jax {device['jax']}; bf16 compute, fp32 "
            f"params; peak = bf16 GEMM {args.gemm}^3 measured in each row's process (x devices); median of "
            f"{args.repeats} calls; rows {'isolated' if isolate else 'in one process'}",
            flush=True,
        )
      print(HEADER, flush=True)
      header_done = True
    for row in got:
      on = rows.get((row["family"], "update", True))
      if (row["step"], row["remat"]) == ("update", False) and on and not on["error"] and not row["error"]:
        row["ratio"] = row["pairs_per_s"] / on["pairs_per_s"]
        row["note"] = f"{row['ratio']:.2f}x the pairs/s of remat on; " + row["note"]
      rows[row["family"], row["step"], row["remat"]] = row
      print(format_row(row), flush=True)
  print(f"total {time.perf_counter() - start:.0f} s", flush=True)
  summary = []
  for family in sorted(families, key=lambda f: f != "qwen3"):
    on, off = rows.get((family, "update", True)), rows.get((family, "update", False))
    mfu = on["mfu"] if on and not on["error"] else float("nan")
    ratio = off.get("ratio", float("nan")) if off else float("nan")
    summary.append(f"{family}_update_mfu={mfu:.3g} {family}_noremat_speed={ratio:.2f}x")
  print(" ".join(summary))


if __name__ == "__main__":
  main()
