"""Every config file builds, validates where its files exist, and bad values name their field."""

import importlib.util
import os

import pytest

from rrpo_jax import config as config_lib
from rrpo_jax.config import validation as config_validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [
    "default.py",
    "nq.py",
    "nq.py:paper",
    "nq.py:qwen3",
    "nq.py:modernbert",
    "hotpotqa.py",
    "hotpotqa.py:paper",
    "hotpotqa.py:qwen3",
    "hotpotqa.py:modernbert",
    "smoke.py",
]


def load(spec):
  """Like config_flags: 'configs/<file>[:arg]' -> get_config(arg)."""
  name, _, arg = spec.partition(":")
  path = os.path.join(ROOT, "configs", name)
  module_spec = importlib.util.spec_from_file_location(f"cfg_{name[:-3]}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


@pytest.mark.parametrize("spec", CONFIGS)
def test_config_builds_with_comments(spec):
  config = load(spec)
  assert config.rrpo.k <= config.data.num_candidates
  assert config.eval.k <= config.data.num_candidates
  # every field of the default has a one-line comment
  if spec == "default.py":  # the defaults and variants live in the package; configs/default.py re-exports them
    text = "".join(
        open(os.path.join(ROOT, "rrpo_jax", "config", name), encoding="utf-8").read()
        for name in ("__init__.py", "variants.py")
    )
    for line in text.splitlines():
      stripped = line.strip()
      if (
          stripped.startswith(("c.", "r."))
          and " = " in stripped
          and "ConfigDict()" not in stripped
          and "reader_config" not in stripped
      ):
        assert "#" in stripped, f"field without a comment: {stripped}"


@pytest.mark.parametrize("spec", ["default.py", "nq.py", "hotpotqa.py", "smoke.py"])
def test_embedded_configs_validate(spec):
  assert config_validation.validate(load(spec), num_devices=1) == ("sft", "rrpo", "eval")


def test_paper_variants_name_missing_files():
  config = load("nq.py:paper")
  assert config.data.num_candidates == 100 and config.rrpo.k == 3 and config.eval.k == 5
  assert config.reader.backend == "openai" and config.reader.base_url
  with pytest.raises(config_validation.ConfigError, match=r"config\.data\.train_path"):
    config_validation.validate(config, num_devices=8)
  assert load("hotpotqa.py:paper").eval.k == 3


@pytest.mark.parametrize("spec", ["nq.py:qwen3", "hotpotqa.py:qwen3", "nq.py:modernbert", "hotpotqa.py:modernbert"])
def test_backbone_variants_are_paper_scale_with_local_weights(spec):
  config = load(spec)
  assert config.data.num_candidates == 100 and config.rrpo.k == 3
  assert config.model.dtype == "bfloat16" and config.model.remat
  paper = load(spec.split(":")[0] + ":paper")
  assert config.rrpo.batch_size * config.rrpo.grad_accum == paper.rrpo.batch_size
  config.data.train_path = config.data.eval_path = os.path.join(ROOT, "configs", "default.py")  # exist
  with pytest.raises(config_validation.ConfigError, match=r"config\.model\.init"):
    config_validation.validate(config, num_devices=1)


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown variant"):
    load("nq.py:huge")


@pytest.mark.parametrize(
    "field,value,named",
    [
        ("rrpo.k", 99, "rrpo.k"),
        ("eval.k", 0, "eval.k"),
        ("rrpo.batch_size", 6, "rrpo.batch_size"),
        ("mode", "sft,train", "mode"),
        ("rrpo.advantage", "critic", "rrpo.advantage"),
        ("eval.best_metric", "policy_accuracy", "eval.best_metric"),
        ("data.buckets", (64, 512), "data.buckets"),
        ("data.eval_path", "/nonexistent/dev.jsonl", "data.eval_path"),
        ("model.init", "/nonexistent/model", "model.init"),
        ("reader.backend", "vllm", "reader.backend"),
        ("eval.reader.backend", "openai", "eval.reader.base_url"),
        ("data.eval_split", "trian", "data.eval_split"),
        ("eval.select_split", "val", "eval.select_split"),  # val_size is 0 in the default
        ("rrpo.standardize", "zscore", "rrpo.standardize"),
        ("rrpo.ref_mode", "train", "rrpo.ref_mode"),
        ("eval.checkpoint", "first", "eval.checkpoint"),
        ("eval.name", "../x", "eval.name"),
        ("kernels", "gpu", "kernels"),
    ],
)
def test_bad_values_name_the_field(field, value, named):
  config = load("default.py")
  section, _, key = field.rpartition(".")
  target = config
  for part in section.split(".") if section else []:
    target = target[part]
  target[key] = value
  with pytest.raises(config_validation.ConfigError, match=rf"config\.{named}\b"):
    config_validation.validate(config, num_devices=4)


@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"model.random.num_attention_heads": 0}, "model.random.num_attention_heads"),  # was ZeroDivisionError
        ({"model.random.hidden_size": -64}, "model.random.hidden_size"),
        ({"data.buckets": ("",)}, "data.buckets"),  # `--config.data.buckets=''`; was TypeError
        ({"data.buckets": (1.5, 128)}, "data.buckets"),
    ],
)
def test_wrongly_typed_sizes_name_the_field(overrides, named):
  config = load("smoke.py")  # model.init = "random": the random architecture is validated
  for field, value in overrides.items():
    section, _, key = field.rpartition(".")
    target = config
    for part in section.split("."):
      target = target[part]
    target[key] = value
  with pytest.raises(config_validation.ConfigError, match=rf"config\.{named}: "):
    config_validation.validate(config, num_devices=1)


def test_a_value_with_a_newline_keeps_the_message_one_line():
  config = load("default.py")
  config.data.eval_path = "/nonexistent/dev\n.jsonl"  # a typo'd path: the message must stay one line
  with pytest.raises(config_validation.ConfigError) as e:
    config_validation.validate(config, num_devices=1)
  assert str(e.value) == "config.data.eval_path: file not found: /nonexistent/dev\\n.jsonl"


EXPERIMENTS = [
    "experiments/nq_rrpo.py:sft",
    "experiments/nq_rrpo.py:seed=1",
    "experiments/nq_rrpo.py:seed=0,transfer",
    "experiments/hotpotqa_rrpo.py:sft",
    "experiments/hotpotqa_rrpo.py:seed=1",
]


@pytest.mark.parametrize("spec", EXPERIMENTS)
def test_experiment_configs_select_on_val_and_report_elsewhere(spec):
  config = load(spec)
  d = config.data
  assert d.val_size > 0
  if config.mode != "sft,eval":  # the RRPO stages: periodic evaluation (selection) on val only
    assert config.eval.select_split == "val" and d.eval_split != "val" and config.eval.checkpoint == "best"
    assert config.rrpo.init_from.endswith("_sft/checkpoints/sft")
  config.rrpo.init_from = ""  # the warm-up stage's output does not exist in a test
  modes = config_validation.validate(config, num_devices=1)
  assert modes == tuple(config.mode.split(","))
  assert load("experiments/nq_rrpo.py:seed=1").seed == 1
  with pytest.raises(ValueError, match="unknown experiment stage"):
    load("experiments/nq_rrpo.py:sed=1")


def test_eval_reader_inherits_unset_fields():
  config = load("default.py")
  config.eval.reader.model = "gemma3-270m"
  config.eval.reader.max_tokens = 8
  resolved = config_validation.resolve_reader(config.reader, config.eval.reader)
  assert resolved["model"] == "gemma3-270m" and resolved["max_tokens"] == 8
  assert resolved["backend"] == config.reader.backend and resolved["n_ctx"] == config.reader.n_ctx
  assert config_validation.resolve_reader(config.reader, config.eval.reader.__class__()) == config.reader.to_dict()


def test_every_reader_field_is_settable_with_the_readers_default():
  """One source of reader defaults (reader.DEFAULTS); every field make_reader reads is a config field."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from rrpo_jax import reader as reader_lib  # pylint: disable=import-outside-toplevel

  r = load("default.py").reader
  assert set(r.keys()) == set(reader_lib.DEFAULTS)
  assert {k: r[k] for k in r.keys()} == reader_lib.DEFAULTS
  assert {f.name for f in dataclasses.fields(reader_lib.PromptTemplate)} <= set(r.keys())
  unset = load("default.py").eval.reader
  assert all(unset[k] in ("", -1, -1.0) for k in unset.keys())


def test_config_files_import_without_sys_path_edits():
  for dirpath, _, files in os.walk(os.path.join(ROOT, "configs")):
    for name in files:
      if name.endswith(".py"):
        assert "sys.path" not in open(os.path.join(dirpath, name), encoding="utf-8").read(), name


CROSSFIT = [
    "experiments/nq_crossfit.py:sft=has_answer,fold=0",
    "experiments/nq_crossfit.py:sft=reader,fold=1",
    "experiments/nq_crossfit.py:rrpo,fold=1,seed=1",
    "experiments/nq_crossfit.py:rrpo,fold=0,seed=0,reward=ll",
    "experiments/nq_crossfit.py:rrpo,fold=0,seed=0,transfer",
    "experiments/nq_crossfit.py:learn",
    "experiments/nq_crossfit.py:learn,reward=ll",
    "experiments/hotpotqa_crossfit.py:sft=is_supporting,fold=1",
    "experiments/hotpotqa_crossfit.py:rrpo,fold=0,seed=1",
]


@pytest.mark.parametrize("spec", CROSSFIT)
def test_crossfit_stages_train_on_one_fold_and_report_on_the_other(spec):
  config = load(spec)
  d = config.data
  hotpot = "hotpotqa" in spec
  assert d.folds == 2 and d.val_size == (50 if hotpot else 150)
  if spec.endswith(("learn", "reward=ll")) and "learn" in spec:
    assert d.eval_split == "train" and d.max_train_queries == 200 and config.rrpo.steps * config.rrpo.batch_size == 1600
  elif config.mode == "sft,eval":
    assert d.eval_split == "val" and config.sft.labels in ("has_answer", "reader", "is_supporting")
  else:  # the pre-registered rule: the last step on the held-out fold, nothing selected
    assert d.eval_split == "heldout" and config.eval.checkpoint == "latest" and config.eval.every_steps == 0
    assert config.rrpo.steps * config.rrpo.batch_size >= (800 if hotpot else 2500)
    warmup = "is_supporting" if hotpot else "has_answer"
    assert config.rrpo.init_from.endswith(f"_sft_{warmup}_f{d.fold}/checkpoints/sft")
  assert config.reward.lambda_ll == (1.0 if "reward=ll" in spec else 0.0)
  config.rrpo.init_from = ""  # the warm-up stage's output does not exist in a test
  assert config_validation.validate(config, num_devices=1) == tuple(config.mode.split(","))
  with pytest.raises(ValueError, match="name one stage"):
    load("experiments/nq_crossfit.py:fold=0")
