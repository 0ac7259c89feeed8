"""Start-up validation of the config (validate) and the values derived from it that the trainer
reads (modes, eval systems, the selection split, the resolved evaluation reader).

validate() runs once, before anything is built, and raises ConfigError whose one-line message names
the field (`config.rrpo.k: must be in [1, data.num_candidates=12], got 13`). It reads the
registries (objective, reader backends, data formats, reward terms), never copied name lists.
"""

from __future__ import annotations

import os

from rrpo_jax.train import evaluation
from rrpo_jax.core import cpu_kernels
from rrpo_jax.core import objective
from rrpo_jax import paths
from rrpo_jax import reader as reader_lib
from rrpo_jax.core import rewards
from rrpo_jax.core import sharding
from rrpo_jax.data import splits
from rrpo_jax.data.formats import FORMATS
from rrpo_jax.data.sample import SPLITS as SAMPLES
from rrpo_jax.errors import ConfigError
from rrpo_jax.registry import one_of as _one_of

MODES = ("sft", "rrpo", "eval", "export")
DEFAULT_MODES = ("sft", "rrpo", "eval")
SYSTEMS = ("retriever", "reference", "policy")
LABEL_KINDS = (
    "auto",
    "has_answer",
    "is_supporting",
    "reader",
)  # sft.labels (labels_for; "reader": the reader's likelihood)
REF_MODES = ("eval", "same_dropout")  # how log pi_ref of the ratio is computed (rrpo.ref_mode)


def parse_modes(mode: str) -> tuple[str, ...]:
  """config.mode -> the modes to run, in order ("default" = sft, rrpo, eval)."""
  if mode in ("default", ""):
    return DEFAULT_MODES
  modes = tuple(m.strip() for m in mode.split(",") if m.strip())
  bad = [m for m in modes if m not in MODES]
  if bad or not modes:
    raise ConfigError(f"config.mode={mode!r}: unknown mode(s) {bad}; use 'default' or a comma list of {MODES}")
  return modes


def _check(ok: bool, field: str, message: str):
  if not ok:  # a value quoted in the message may hold a newline (a path typed with one): escaped
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    raise ConfigError(f"config.{field}: {line}")


def _is_int(value) -> bool:
  """An int that is not a bool (ml_collections keeps a tuple override's elements as parsed)."""
  return isinstance(value, int) and not isinstance(value, bool)


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
      all(_is_int(b) and 0 < b <= d.max_length for b in d.buckets),
      "data.buckets",
      f"every bucket must be an integer in (0, data.max_length={d.max_length}], got {tuple(d.buckets)}",
  )
  _check(d.max_train_queries >= 0, "data.max_train_queries", "must be >= 0")
  _check(d.max_eval_queries >= 0, "data.max_eval_queries", "must be >= 0")
  for field in ("train_path", "eval_path"):
    path = d[field]
    _check(not path or os.path.exists(path), f"data.{field}", f"file not found: {path}")
  _check(d.sample in SAMPLES, "data.sample", f"must be {_one_of([repr(x) for x in SAMPLES])}, got {d.sample!r}")
  _check(d.format in FORMATS, "data.format", f"must be {_one_of(FORMATS.names())}, got {d.format!r}")
  _check(d.val_size >= 0, "data.val_size", f"must be >= 0, got {d.val_size}")
  fold_problem = splits.check_folds(d)  # data.folds / data.fold (cross-fitting)
  if fold_problem:
    _check(False, *fold_problem)
  for field, split in (("data.eval_split", d.eval_split), ("eval.select_split", select_split(config))):
    why = splits.check(d, split)
    _check(why is None, field, why or "")
  _check(m.dtype in ("float32", "bfloat16"), "model.dtype", f"must be float32 or bfloat16, got {m.dtype!r}")
  _check(0.0 <= m.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {m.dropout}")
  if m.init == "random":
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
      value = m.random[field]
      _check(_is_int(value) and value >= 1, f"model.random.{field}", f"must be an integer >= 1, got {value!r}")
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
  # a checkpoint directory may sit in a bucket (gs://...); a Hugging Face directory is read from local disk
  if r.init_from:
    problem = paths.backend_problem(r.init_from)
    _check(problem is None, "rrpo.init_from", str(problem))
    _check(paths.isdir(r.init_from), "rrpo.init_from", f"directory not found: {r.init_from}")
  _check(
      config.parallel in sharding.PARALLEL_KINDS,
      "parallel",
      f"must be {_one_of([repr(x) for x in sharding.PARALLEL_KINDS])}, got {config.parallel!r}",
  )
  _check(
      config.kernels in cpu_kernels.CHOICES,
      "kernels",
      f"must be {_one_of([repr(x) for x in cpu_kernels.CHOICES])}, got {config.kernels!r}",
  )
  if "sft" in modes and s.steps > 0:
    _check(
        s.batch_size % num_devices == 0,
        "sft.batch_size",
        f"{s.batch_size} is not divisible by the {num_devices} devices",
    )
    _check(s.labels in LABEL_KINDS, "sft.labels", f"must be {_one_of(LABEL_KINDS)}, got {s.labels!r}")
    _check(s.reader_temperature > 0, "sft.reader_temperature", f"must be > 0, got {s.reader_temperature}")
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
  _check(_is_int(r.samples) and r.samples >= 1, "rrpo.samples", f"must be an integer >= 1, got {r.samples!r}")
  _check(
      r.samples == 1 or r.selection == "sample",
      "rrpo.samples",
      f"{r.samples} samples per question need rrpo.selection='sample' (greedy repeats one top-k)",
  )
  for name, term in rewards.TERMS.items():
    if term.weight is not None and term.weight in config.reward:
      _check(
          config.reward[term.weight] >= 0, f"reward.{term.weight}", f"must be >= 0, got {config.reward[term.weight]}"
      )
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
    reader_problem = reader_lib.BACKENDS.get(rc["backend"]).check(rc)
    if reader_problem:
      _check(False, f"{prefix}.{reader_problem[0]}", reader_problem[1])
    _check(int(rc["max_tokens"]) >= 1, f"{prefix}.max_tokens", "must be >= 1")
    problem = reader_lib.cache_problem(rc.get("cache_path") or "")
    _check(problem is None, f"{prefix}.cache_path", problem or "")
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
