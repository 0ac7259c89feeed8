"""Config variants shared by the dataset configs: embedded (the bundled-sample runs' reader, reward
and the RRPO choices the experiments settled on), warmup_stage (the experiments' supervised
warm-up), paper_scale (the paper's setting) and the same with another policy backbone (qwen3_scale,
modernbert_scale). Each edits a config built by config.get_config in place and returns it;
configs/nq.py and configs/hotpotqa.py then set their data paths and k_eval (`--config=configs/nq.py`,
`:paper`, `:qwen3`, `:modernbert`).
"""

from __future__ import annotations


def embedded(c):
  """The bundled-sample runs (configs/nq.py, configs/hotpotqa.py without a variant): the in-process
  Gemma-3-270M reader (about 1.2 s vs 2.2 s a 3-paragraph call on 2 cores, and F1 24.5 vs 9.8 with
  BM25's top 3 on the NQ sample's dev+test: docs/results.md; SmolLM2 answers in sentences, so its EM
  carries no signal; trained against SmolLM2 and validated with Gemma, the NQ policy did not differ
  significantly: +1.51 / -0.55 F1 at steps 16 / 32), the RRPO choices of rrpo_choices and the
  reward R + q (lambda_ll = 1), which the cross-fitted NQ experiment's pre-registered rule chose on
  its learnability check and `val` (docs/results.md, "Cross-fitted NQ"): F1 over the reference on
  the 200 training questions +3.53 vs +2.84 with R alone, on `val` 25.50 vs 22.88; 55-58% of the
  episodes tied the reference at every step with R alone, 3-6% with R + q, for about 13% more
  reader time."""
  c.reader.model = "gemma3-270m"  # faster and stronger than SmolLM2 here (see above)
  c.reward.lambda_ll = 1.0  # R + q: the reader's gold-answer likelihood breaks the ties (see above)
  return rrpo_choices(c)


def rrpo_choices(c):
  """The RRPO settings the NQ experiment chose on its validation split (docs/results.md; the paper's
  own loop stays config.py's default and paper_scale's: greedy top-k under dropout, GAE, mean/std).

  Plackett-Luce sampling explores, so dropout is not needed, and at step 1 the ratio is then exactly
  1 (dropout 0.1 with identical parameters logged ratios 0.72-1.99, past the 0.8-1.2 clip); without
  dropout a greedy policy would repeat the reference's top-k (every advantage 0). Against these
  settings on val (NQ seed 0, steps 16 / 32, none significant): GAE + mean/std -0.61 / -1.11 F1;
  greedy top-k under dropout 0.1 -2.69 / -1.02 F1 (its step-1 ratios 0.67-3.76); beta 0 -0.23 /
  0.00, beta 0.1 -0.50 / +0.76; k_train 1 -0.57 / -0.31; k_train 5 -0.15 / +2.35 at 1.8x the cost
  (k stays 3, the paper's); learning rate 2e-4 -1.67 / -1.00, 1e-5 -1.99 / -1.19; greedy with the
  reference under the policy's dropout masks -1.28 / -1.34.
  model.dropout also applies to a warm-up in the same run.
  """
  c.model.dropout = 0.0  # exploration by sampling; the ratio is 1 at step 1
  c.rrpo.selection = "sample"  # Gumbel-top-k from the policy (greedy: the ablation in docs/results.md)
  c.rrpo.advantage = "ref_diff_return"  # no query-difficulty term (GAE: A_t = V_{t+1} + ... on a repeat)
  c.rrpo.standardize = "std"  # zero advantages (policy prefix = reference prefix) stay zero
  c.rrpo.learning_rate = 5e-5  # a 30-step pilot's value; 2e-4 and 1e-5 both lower on NQ val (n.s.)
  return c


def warmup_stage(c, *, steps: int, labels: str):
  """The experiments' supervised warm-up stage (configs/experiments/): `steps` x 4 questions on
  sft.labels = `labels` (20 warm-up steps, learning rate 2e-4, dropout 0.1, checkpoints every 50),
  then judged on val, retriever vs reference, nothing selected. Its result is the RRPO runs'
  initialisation and frozen reference."""
  c.mode = "sft,eval"  # train, then retriever vs reference
  c.sft.steps = steps  # x 4 questions
  c.sft.warmup_steps = 20  # linear learning-rate warm-up
  c.sft.batch_size = 4  # questions a step
  c.sft.learning_rate = 2e-4  # peak AdamW rate
  c.sft.labels = labels  # has_answer, is_supporting, reader or auto (config.py)
  c.model.dropout = 0.1  # the warm-up's regulariser (the RRPO stages run without: rrpo_choices)
  c.checkpoint.every_steps = 50  # resumable in pieces
  c.data.eval_split = "val"  # a warm-up is judged on val only
  c.eval.systems = "retriever,reference"  # the warm-up against the order it started from
  c.eval.best_metric = ""  # nothing selected: the last step is the warm-up
  return c


def paper_scale(c):
  """The paper-scale settings shared by every dataset's ':paper' variant (BM25 top-100 candidates,
  a trained cross-encoder init, k_train=3, Qwen2.5-7B-Instruct behind an OpenAI-compatible vLLM
  server); each dataset config then sets its data paths and k_eval."""
  c.data.num_candidates = 100  # N = 100 (BM25 top-100 over Wikipedia)
  c.data.max_length = 256  # tokens per pair
  c.data.buckets = (128, 192, 256)  # padded pair lengths
  c.data.max_eval_queries = 0  # evaluate on the whole dev set
  c.data.eval_split = "eval"  # report on data.eval_path (the variants set it; validate requires it)
  c.model.init = "models/bge-reranker-base"  # a trained cross-encoder (HF directory)
  c.model.dtype = "bfloat16"  # bf16 compute, fp32 params and scores
  c.model.remat = True  # recompute activations: N=100 pairs per query
  c.sft.steps = 0  # the init is already a supervised reranker
  c.rrpo.steps = 3000  # unpublished
  c.rrpo.batch_size = 64  # queries per step (unpublished)
  c.rrpo.k = 3  # k_train = 3
  c.rrpo.learning_rate = 5e-6  # unpublished
  c.rrpo.warmup_steps = 100  # unpublished
  c.rrpo.window = 4096  # advantage window (unpublished)
  c.rrpo.grad_accum = 1  # raise to fit a larger effective batch
  c.eval.every_steps = 500  # periodic evaluation
  c.eval.batch_size = 64  # queries per scoring batch
  c.checkpoint.every_steps = 250  # checkpoint cadence
  c.checkpoint.keep = 3  # latest checkpoints kept
  c.reader.backend = "openai"  # an OpenAI-compatible server
  c.reader.model = "Qwen/Qwen2.5-7B-Instruct"  # the paper's reader
  c.reader.base_url = "http://127.0.0.1:8000/v1"  # launch/reader_vllm.sh
  c.reader.max_tokens = 32  # answer budget
  c.reader.max_passage_chars = 0  # passages in full
  c.reader.concurrency = 64  # parallel requests
  return c


def qwen3_scale(c):
  """paper_scale with Qwen3-Reranker-0.6B as the policy (a local Qwen3ForCausalLM directory: config.json,
  safetensors, tokenizer files), sized for one 80 GB GPU at N=100, k_train=3: bf16 compute, per-layer
  remat, 8 queries (800 prompts) per update, 8 updates accumulated per optimiser step (64 queries).
  Sizing is an estimate, not a measurement: 8 x ~2.2 GiB of layer inputs kept by remat + one layer's
  recomputation (~1 GiB per query of attention logits) + 7 GiB of params, gradients and AdamW."""
  paper_scale(c)
  c.model.init = "models/Qwen3-Reranker-0.6B"  # local copy of Qwen/Qwen3-Reranker-0.6B (HF directory)
  c.model.dtype = "bfloat16"  # bf16 compute, fp32 params and scores
  c.model.remat = True  # per-layer remat: ~2.2 GiB of saved layer inputs per query (28 x 100 x 384 x 1024 bf16)
  c.data.max_length = 384  # the card's template is ~60 tokens; a 100-word passage ~150 more
  c.data.buckets = (256, 320, 384)  # padded prompt lengths (left padding)
  c.rrpo.batch_size = 8  # queries per update: 800 prompts with gradients through the decoder
  c.rrpo.grad_accum = 8  # 8 x 8 = 64 queries per optimiser step, as paper_scale
  c.eval.batch_size = 8  # queries per scoring batch (800 prompts, forward only)
  return c


def modernbert_scale(c):
  """paper_scale with gte-reranker-modernbert-base (a local ModernBertForSequenceClassification
  directory) as the policy: bf16 compute, per-layer remat, 32 queries x 2 accumulated per step (an
  estimate for one 80 GB GPU: 22 x 100 x 256 x 768 bf16 = 0.8 GiB of layer inputs per query)."""
  paper_scale(c)
  c.model.init = "models/gte-reranker-modernbert-base"  # local copy of Alibaba-NLP/gte-reranker-modernbert-base
  c.rrpo.batch_size = 32  # queries per update
  c.rrpo.grad_accum = 2  # 32 x 2 = 64 queries per optimiser step, as paper_scale
  return c
