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
  """Paper scale; paths point at files you prepare with rrpo_jax.data.convert / rrpo_jax.data.bm25."""
  c.data.train_path = "data/ambignq/train.bm25top100.jsonl"  # AmbigNQ train with BM25 top-100 candidates
  c.data.eval_path = "data/ambignq/dev.bm25top100.jsonl"  # AmbigNQ dev
  c.data.num_candidates = 100  # N = 100 (BM25 top-100 over Wikipedia)
  c.data.max_length = 256
  c.data.buckets = (128, 192, 256)
  c.data.max_eval_queries = 0
  c.model.init = "models/bge-reranker-base"  # a trained cross-encoder (HF directory)
  c.model.dtype = "bfloat16"
  c.model.remat = True
  c.sft.steps = 0  # the init is already a supervised reranker
  c.rrpo.steps = 3000
  c.rrpo.batch_size = 64
  c.rrpo.k = 3  # k_train = 3
  c.rrpo.learning_rate = 5e-6
  c.rrpo.warmup_steps = 100
  c.rrpo.window = 4096
  c.rrpo.grad_accum = 1
  c.eval.k = 5  # k_eval = 5 on AmbigNQ
  c.eval.every_steps = 500
  c.eval.batch_size = 64
  c.checkpoint.every_steps = 250
  c.checkpoint.keep = 3
  c.reader.backend = "openai"
  c.reader.model = "Qwen/Qwen2.5-7B-Instruct"
  c.reader.base_url = "http://127.0.0.1:8000/v1"  # launch/reader_vllm.sh
  c.reader.max_tokens = 32
  c.reader.concurrency = 64
  return c
