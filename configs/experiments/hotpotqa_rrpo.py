"""The HotpotQA experiment: RRPO vs its supervised initialisation on the bundled distractor sample.

250 training questions (10 paragraphs each, 2 supporting), of which the last 50 are the validation
split "val" (selection only); dev (100 questions) is the report split: too few for a tight
interval, so the target there is a point estimate, interval reported. Stages as in nq_rrpo.py:

  python -m rrpo_jax.main --config=configs/experiments/hotpotqa_rrpo.py:sft --workdir=runs/exp/hotpotqa_sft
  python -m rrpo_jax.main --config=configs/experiments/hotpotqa_rrpo.py:seed=0 --workdir=runs/exp/hotpotqa_rrpo_s0
  python -m rrpo_jax.main --config=configs/experiments/hotpotqa_rrpo.py:seed=0,transfer \\
      --workdir=runs/exp/hotpotqa_rrpo_s0
"""

from rrpo_jax.config import load_sibling

hotpotqa = load_sibling(__file__, "../hotpotqa.py")
rrpo_stages = load_sibling(__file__, "rrpo_stages.py")


def get_config(arg=None):
  """`arg`: "sft", or "seed=N" (default 0) for RRPO, with ",transfer" for the transfer evaluation."""
  c = hotpotqa.get_config()
  c.data.val_size = 50  # the last 50 training questions: selection only
  c.data.eval_split = "dev"  # 100 questions: reported, never used for selection
  c.data.max_eval_queries = 0
  c.eval.k = 3  # k_eval = 3 on HotpotQA (paper)
  # 200 training questions: 200 steps x 4 = 4 epochs of the supporting-paragraph labels
  return rrpo_stages.stage(c, arg, exp="runs/exp/hotpotqa", sft_steps=200, sft_labels="is_supporting")
