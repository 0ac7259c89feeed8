"""The stages every cross-fitted experiment shares (nq_crossfit.py, hotpotqa_crossfit.py).

A sample's questions outside `val` are dealt into two fixed folds (data.folds=2, rrpo_jax/data/
splits.py: fold_of). Each fold's models (warm-up and RRPO) train on that fold and are evaluated on
the other ("heldout"), so every question is reported once by models that never trained on it;
`python -m rrpo_jax.compare` pools the two folds' rows. Reader Gemma-3-270M, k=3; SmolLM2-135M is
the transfer reader (never used in training). All stages of an experiment share one reader cache,
so the retriever and reference answers are asked once. Stage argument (`:`-suffix of the config
path, comma-separated):

  sft=LABELS,fold=F               the warm-up on fold F (sft.labels: has_answer, is_supporting or
                                  reader), evaluated on val (retriever vs reference): the reference
                                  of the RRPO runs and a control
  rrpo,fold=F,seed=S[,reward=R]   RRPO from fold F's warm-up (warmup=LABELS picks which, default
                                  the experiment's), evaluated on the held-out fold at its last step
                                  (the pre-registered checkpoint rule); reward=ll adds the likelihood
                                  term (reward.lambda_ll = LAMBDA_LL)
  ...,transfer                    the same checkpoints evaluated with SmolLM2 (results_transfer.json)
  learn[,reward=R]                the learnability check: RRPO from fold 0's warm-up on the first
                                  LEARN_QUESTIONS questions of fold 0 for 8 epochs, then the
                                  reference and the policy on those same questions

Every stage resumes when rerun with the same command. Workdirs and the cache are relative to the
directory the command runs in.
"""

from rrpo_jax import config as default
from rrpo_jax.config import variants

LAMBDA_LL = 1.0  # reward.lambda_ll of reward=ll (q in (0, 1] next to EM + F1 + hit in [0, 3])
STAGES = ("sft", "rrpo", "learn", "fold", "seed", "reward", "warmup", "transfer")
LEARN_QUESTIONS = 200  # the learnability check's training questions (8 epochs of them)


def parse(arg, name: str) -> dict:
  parts = dict(p.partition("=")[::2] for p in (arg or "").split(",") if p)
  unknown = set(parts) - set(STAGES)
  if unknown:
    raise ValueError(f"{name}: unknown stage argument(s) {sorted(unknown)}: use {STAGES}")
  if sum(s in parts for s in ("sft", "rrpo", "learn")) != 1:
    raise ValueError(f"{name}: name one stage: sft=LABELS, rrpo or learn")
  if parts.get("reward", "") not in ("", "ll"):
    raise ValueError(f"{name}: reward must be ll (or absent), got {parts['reward']!r}")
  return parts


def stage(arg, *, name: str, sample: str, val_size: int, exp: str, warmup: str, rrpo_steps: int, sft_steps: int):
  """The config of stage `arg` of the cross-fitted experiment on `sample` whose runs live in `exp`
  (workdirs <exp>_sft_<labels>_f<F>, <exp>_rrpo_s<S>_f<F>[_ll], <exp>_learn[_ll]); warmup: the
  default warm-up labels of the RRPO stages; rrpo_steps x 8 episodes per fold model."""
  parts = parse(arg, name)
  c = default.get_config()
  c.data.sample = sample
  c.data.val_size = val_size  # selection only
  c.data.folds = 2
  c.data.fold = int(parts.get("fold", 0))
  c.data.eval_split = "heldout"  # the other fold: reported, never used for selection
  c.data.max_eval_queries = 0
  c.eval.select_split = "val"
  c.eval.k = 3
  c.eval.batch_size = 16
  c.eval.likelihood = True  # the q column next to EM / F1
  c.reader.model = "gemma3-270m"
  c.reader.cache_path = f"{exp}_reader_cache.sqlite"  # shared by every stage
  c.checkpoint.keep = 2
  if "sft" in parts:
    return variants.warmup_stage(c, steps=sft_steps, labels=parts["sft"] or warmup)
  warmup = parts.get("warmup", warmup)
  c.sft.steps = 0
  variants.rrpo_choices(c)  # dropout 0, Plackett-Luce sampling, ref_diff_return + std, lr 5e-5
  c.rrpo.batch_size = 8
  c.rrpo.warmup_steps = 10
  c.rrpo.beta = 0.01
  c.eval.every_steps = 0
  c.eval.checkpoint = "latest"  # the pre-registered rule: the last step, nothing selected
  c.eval.best_metric = ""
  c.checkpoint.every_steps = 16
  if parts.get("reward") == "ll":
    c.reward.lambda_ll = LAMBDA_LL
  if "learn" in parts:
    c.mode = "rrpo,eval"
    c.data.fold = 0
    c.data.max_train_queries = LEARN_QUESTIONS
    c.data.eval_split = "train"  # the same questions: can the method fit them?
    c.rrpo.init_from = f"{exp}_sft_{warmup}_f0/checkpoints/sft"
    c.rrpo.steps = LEARN_QUESTIONS  # x 8 = 8 epochs of the questions
    return c
  c.mode = "rrpo,eval"
  c.seed = int(parts.get("seed", 0))
  c.rrpo.init_from = f"{exp}_sft_{warmup}_f{c.data.fold}/checkpoints/sft"
  c.rrpo.steps = rrpo_steps
  if "transfer" in parts:
    c.mode = "eval"
    c.eval.name = "transfer"
    c.eval.reader.model = "smollm2-135m-instruct"
  return c
