"""The stages every RRPO experiment shares: warm-up, RRPO per seed, transfer evaluation.

A dataset's experiment file sets its data and calls `stage(c, arg, exp=...)`; `arg` is "sft", or
"seed=N" (default 0) for RRPO, with ",transfer" for the transfer evaluation. Each RRPO default says
what it was chosen on.
"""

from rrpo_jax.config import variants


def stage(c, arg, *, exp: str, sft_steps: int, sft_labels: str = "auto"):
  """Turns the dataset config `c` into the stage `arg` of the experiment whose runs live in `exp`."""
  parts = dict(p.partition("=")[::2] for p in (arg or "").split(",") if p)
  unknown = set(parts) - {"sft", "seed", "transfer"}
  if unknown:
    raise ValueError(f"unknown experiment stage argument(s) {sorted(unknown)}: use sft, seed=N, transfer")
  c.reader.model = "gemma3-270m"  # as variants.embedded: faster and stronger than SmolLM2
  c.reader.cache_path = f"{exp}_reader_cache.sqlite"  # shared by every stage and run
  c.eval.batch_size = 16
  c.checkpoint.keep = 2
  if "sft" in parts:
    return variants.warmup_stage(c, steps=sft_steps, labels=sft_labels)
  c.seed = int(parts.get("seed", 0))
  c.mode = "rrpo,eval"
  c.rrpo.init_from = f"{exp}_sft/checkpoints/sft"  # the warm-up stage's result is the reference
  c.sft.steps = 0
  variants.rrpo_choices(c)  # dropout 0, Plackett-Luce sampling, ref_diff_return + std, lr 5e-5
  c.rrpo.steps = 32
  c.rrpo.batch_size = 8
  c.rrpo.warmup_steps = 2
  c.rrpo.beta = 0.01
  c.eval.every_steps = 16  # on val: picks the checkpoint that is reported
  c.eval.select_split = "val"
  c.eval.best_metric = "policy_f1"
  c.eval.checkpoint = "best"
  c.checkpoint.every_steps = 8
  if "transfer" in parts:
    c.mode = "eval"
    c.eval.name = "transfer"
    c.eval.reader.model = "smollm2-135m-instruct"
  return c
