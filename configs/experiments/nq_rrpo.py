"""The NQ experiment: does RRPO make the reader answer better than its supervised initialisation?

Bundled NQ sample: 2,255 training questions, of which the last 150 are held out as the validation
split "val" (selection: periodic evaluation, best checkpoint); dev + test (400 questions, never used
for selection) are the report split. Training reader Gemma-3-270M; SmolLM2-135M is the transfer
reader (a reader never used in training). All stages share one reader cache, so the retriever and
reference rows are answered once for every run. The stages and their defaults: rrpo_stages.py.

  # 1. supervised warm-up (the reference), then retriever vs reference on val
  python -m rrpo_jax.main --config=configs/experiments/nq_rrpo.py:sft --workdir=runs/exp/nq_sft
  # 2. RRPO from the warm-up, one seed per run; selects on val, reports on dev+test
  python -m rrpo_jax.main --config=configs/experiments/nq_rrpo.py:seed=0 --workdir=runs/exp/nq_rrpo_s0
  # 3. transfer: the same checkpoints evaluated with SmolLM2 (results_transfer.json)
  python -m rrpo_jax.main --config=configs/experiments/nq_rrpo.py:seed=0,transfer --workdir=runs/exp/nq_rrpo_s0
  # compare any two evaluated runs on the same questions
  python -m rrpo_jax.compare runs/exp/nq_rrpo_s0 runs/exp/nq_rrpo_s1

Every stage resumes when rerun with the same command. Ablations are command-line overrides of
stage 2 with their own --workdir, selected on val only (e.g. --config.rrpo.advantage=gae).
"""

from rrpo_jax import config as default
from rrpo_jax.config import load_sibling

rrpo_stages = load_sibling(__file__, "rrpo_stages.py")


def get_config(arg=None):
  """`arg`: "sft", or "seed=N" (default 0) for RRPO, with ",transfer" for the transfer evaluation."""
  c = default.get_config()
  c.data.sample = "nq"
  c.data.val_size = 150  # the last 150 training questions: selection only
  c.data.eval_split = "dev+test"  # 400 questions: reported, never used for selection
  c.data.max_eval_queries = 0  # all of them
  c.eval.k = 3
  # 400 steps x 4 queries: the 60-step warm-up of configs/nq.py made Gemma answer worse than BM25's order
  return rrpo_stages.stage(c, arg, exp="runs/exp/nq", sft_steps=400)
