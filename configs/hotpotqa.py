"""HotpotQA: the bundled distractor sample (10 candidates, 2 supporting) and a paper variant.

--config=configs/hotpotqa.py         warm-up on is_supporting labels -> RRPO -> eval, in-process Gemma-3-270M
--config=configs/hotpotqa.py:paper   BM25 top-100 over Wikipedia, k_train=3, k_eval=3, vLLM reader
--config=configs/hotpotqa.py:qwen3   the same with Qwen3-Reranker-0.6B (local weights), one 80 GB GPU
--config=configs/hotpotqa.py:modernbert   the same with gte-reranker-modernbert-base (local weights)
"""

from rrpo_jax import config as default
from rrpo_jax.config import variants


def get_config(arg=None):
  """`arg`: "" for the bundled sample, "paper" for paper scale, "qwen3" / "modernbert" for it with a
  Qwen3-Reranker / gte-reranker-modernbert policy."""
  c = default.get_config()
  c.data.sample = "hotpotqa"
  c.data.num_candidates = 10  # the distractor setting gives 10 paragraphs
  c.data.max_length = 192
  c.data.buckets = (96, 128, 160, 192)
  c.data.max_eval_queries = 30
  c.sft.labels = "is_supporting"  # a third of HotpotQA answers are yes/no: has_answer misses them
  c.rrpo.steps = 16
  c.eval.k = 3  # k_eval = 3 on HotpotQA (paper)
  c.reader.max_passage_chars = 400  # three full paragraphs cost ~2 s per SmolLM2 call on 2 CPU cores
  if arg in (None, ""):
    return variants.embedded(c)
  scales = {"paper": variants.paper_scale, "qwen3": variants.qwen3_scale, "modernbert": variants.modernbert_scale}
  if arg not in scales:
    raise ValueError(f"configs/hotpotqa.py: unknown variant {arg!r} (use '', {', '.join(map(repr, scales))})")
  scales[arg](c)
  c.data.train_path = "data/hotpotqa/train.bm25top100.jsonl"  # from rrpo_jax.data.convert + bm25
  c.data.eval_path = "data/hotpotqa/dev.bm25top100.jsonl"
  return c
