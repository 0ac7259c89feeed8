"""The cross-fitted NQ experiment: can RRPO gain +1 F1 over its own initialisation, seen on ~2,500
questions? (docs/results.md, "Cross-fitted NQ": the pre-registration, commands and results.)

The NQ sample's 150 `val` questions are kept for selection; the other 2,505 (train minus val, dev,
test) are the two folds (1,253 / 1,252). The stages (crossfit_stages.py): warm-ups per fold on
has_answer (the reference) or the reader's preference, RRPO per fold / seed / reward (320 steps x 8
= 2,560 episodes, about 2 epochs of a fold), transfer, and the learnability check.

  python -m rrpo_jax.main --config=configs/experiments/nq_crossfit.py:sft=has_answer,fold=0 \\
      --workdir=runs/exp/nq_cf_sft_has_answer_f0
  python -m rrpo_jax.main --config=configs/experiments/nq_crossfit.py:rrpo,fold=0,seed=0 \\
      --workdir=runs/exp/nq_cf_rrpo_s0_f0
  python -m rrpo_jax.main --config=configs/experiments/nq_crossfit.py:learn --workdir=runs/exp/nq_cf_learn
  python -m rrpo_jax.compare runs/exp/nq_cf_rrpo_s0_f0,runs/exp/nq_cf_rrpo_s0_f1 \\
      --systems=policy:reference --out=results/nq_cf/rrpo_s0_policy_vs_reference.json
"""

from rrpo_jax.config import load_sibling

crossfit = load_sibling(__file__, "crossfit_stages.py")


def get_config(arg=None):
  """`arg`: the stage (crossfit_stages.py)."""
  return crossfit.stage(
      arg,
      name="configs/experiments/nq_crossfit.py",
      sample="nq",
      val_size=150,
      exp="runs/exp/nq_cf",
      warmup="has_answer",
      rrpo_steps=320,  # x 8 = 2,560 episodes per fold model
      sft_steps=400,
  )
