"""The cross-fitted HotpotQA experiment (docs/results.md): the bundled distractor sample's 50 `val`
questions are kept for selection, the other 300 (train minus val, dev) are the two folds (150 /
150), candidates in BM25 order (rrpo_jax/data/sample.py). Warm-ups on the supporting-paragraph
labels (is_supporting), RRPO 100 steps x 8 = 800 episodes per fold model (about 5 epochs of a
fold), evaluated on the held-out fold at the last step. Stages: crossfit_stages.py.

  python -m rrpo_jax.main --config=configs/experiments/hotpotqa_crossfit.py:sft=is_supporting,fold=0 \\
      --workdir=runs/exp/hotpotqa_cf_sft_is_supporting_f0
  python -m rrpo_jax.main --config=configs/experiments/hotpotqa_crossfit.py:rrpo,fold=0,seed=0 \\
      --workdir=runs/exp/hotpotqa_cf_rrpo_s0_f0
"""

from rrpo_jax.config import load_sibling

crossfit = load_sibling(__file__, "crossfit_stages.py")


def get_config(arg=None):
  """`arg`: the stage (crossfit_stages.py)."""
  return crossfit.stage(
      arg,
      name="configs/experiments/hotpotqa_crossfit.py",
      sample="hotpotqa",
      val_size=50,
      exp="runs/exp/hotpotqa_cf",
      warmup="is_supporting",
      rrpo_steps=100,  # x 8 = 800 episodes per fold model (150 questions a fold)
      sft_steps=200,  # x 4 = 800 questions: about 5 epochs of a fold's supporting-paragraph labels
  )
