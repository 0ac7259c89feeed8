"""NQ: the embedded default (bundled NQ sample, MiniLM, SmolLM2 in-process) and a paper variant.

  --config=configs/nq.py         warm-up -> RRPO -> eval on this machine in about 20 minutes (2 CPUs)
  --config=configs/nq.py:paper   the paper's setting on AmbigNQ: BM25 top-100, k_train=3, k_eval=5,
                                 a trained cross-encoder, Qwen2.5-7B-Instruct behind vLLM
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config(arg=None):
  """`arg`: "" for the embedded default, "paper" for paper scale."""
  c = default.get_config()
  c.data.sample = "nq"
  if arg in (None, ""):
    return c
  if arg != "paper":
    raise ValueError(f"configs/nq.py: unknown variant {arg!r} (use '' or 'paper')")
  return paper(c)


def paper(c):
  """Paper scale on AmbigNQ; paths point at files you prepare with rrpo_jax.data.convert / .bm25."""
  default.paper_scale(c)
  c.data.train_path = "data/ambignq/train.bm25top100.jsonl"  # AmbigNQ train with BM25 top-100 candidates
  c.data.eval_path = "data/ambignq/dev.bm25top100.jsonl"  # AmbigNQ dev
  c.eval.k = 5  # k_eval = 5 on AmbigNQ
  return c
