"""Smoke: a tiny random-initialised cross-encoder, a few NQ sample queries, a real SmolLM2 reader
with a tiny token budget. sft -> rrpo -> eval (-> export) in well under two minutes on CPU."""

from rrpo_jax import config as default


def get_config(arg=None):
  """`arg` is ignored."""
  del arg
  c = default.get_config()
  c.data.sample = "nq"
  c.data.num_candidates = 4
  c.data.max_length = 48
  c.data.buckets = (48,)
  c.data.max_train_queries = 16
  c.data.max_eval_queries = 4
  c.model.init = "random"  # tokenizer from the MiniLM package, architecture below
  c.model.random.hidden_size = 32
  c.model.random.num_hidden_layers = 2
  c.model.random.num_attention_heads = 2
  c.model.random.intermediate_size = 64
  c.model.random.max_position_embeddings = 64
  c.sft.steps = 4
  c.sft.batch_size = 4
  c.sft.learning_rate = 1e-3
  c.sft.warmup_steps = 1
  c.rrpo.steps = 2
  c.rrpo.batch_size = 2  # 2 queries x 2k prefixes per step: few reader calls
  c.rrpo.k = 2
  c.rrpo.learning_rate = 1e-3
  c.rrpo.warmup_steps = 1
  c.rrpo.window = 32
  c.eval.k = 2
  c.eval.batch_size = 4
  c.checkpoint.every_steps = 1
  c.reader.max_tokens = 4  # a few words: enough for EM/F1/hit on short answers
  c.reader.max_passage_chars = 160  # short prompts keep each SmolLM2 call well under a second
  c.reader.n_ctx = 512
  return c
