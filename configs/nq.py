"""NQ: the embedded default (bundled NQ sample, MiniLM, Gemma-3-270M in-process) and a paper variant.

--config=configs/nq.py         warm-up -> RRPO -> eval on all 200 dev questions, in-process Gemma-3-270M
                               reader, RRPO choices from the experiments (config_variants.embedded)
--config=configs/nq.py:paper   the paper's setting on AmbigNQ: BM25 top-100, k_train=3, k_eval=5,
                               a trained cross-encoder, Qwen2.5-7B-Instruct behind vLLM
--config=configs/nq.py:qwen3   the same with Qwen3-Reranker-0.6B (local weights) as the policy,
                               bf16 + remat, sized for one 80 GB GPU
--config=configs/nq.py:modernbert   the same with gte-reranker-modernbert-base (local weights)
"""

from rrpo_jax import config as default
from rrpo_jax.config import variants


def get_config(arg=None):
  """`arg`: "" for the embedded default, "paper" for paper scale, "qwen3" / "modernbert" for paper
  scale with a Qwen3-Reranker / gte-reranker-modernbert policy."""
  c = default.get_config()
  c.data.sample = "nq"
  if arg in (None, ""):
    variants.embedded(c)
    c.data.max_eval_queries = 0  # all 200 dev questions: the run fits 20 minutes on 2 cores (README)
    return c
  if arg in ("qwen3", "modernbert"):
    return paper(c, scale=variants.qwen3_scale if arg == "qwen3" else variants.modernbert_scale)
  if arg != "paper":
    raise ValueError(f"configs/nq.py: unknown variant {arg!r} (use '', 'paper', 'qwen3' or 'modernbert')")
  return paper(c)


def paper(c, scale=variants.paper_scale):
  """Paper scale on AmbigNQ; paths point at files you prepare with rrpo_jax.data.convert / .bm25."""
  scale(c)
  c.data.train_path = "data/ambignq/train.bm25top100.jsonl"  # AmbigNQ train with BM25 top-100 candidates
  c.data.eval_path = "data/ambignq/dev.bm25top100.jsonl"  # AmbigNQ dev
  c.eval.k = 5  # k_eval = 5 on AmbigNQ
  return c
