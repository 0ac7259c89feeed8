"""The registries: a new estimator / reader backend / format / reward term is one registration, and
config validation accepts it by name (and still names the field for an unknown one)."""

import importlib.util
import os

import jax.numpy as jnp
import numpy as np
import pytest

from rrpo_jax import config as train
from rrpo_jax.config import validation as config_validation
from rrpo_jax.core import objective
from rrpo_jax.core import rewards
from rrpo_jax.train import scoring
from rrpo_jax import reader as reader_lib
from rrpo_jax.data import formats
from rrpo_jax.registry import Registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_config():
  spec = importlib.util.spec_from_file_location("cfg_default_registry", os.path.join(ROOT, "configs", "default.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_registry_basics():
  reg = Registry("thing")
  reg.register("a", 1)

  @reg.register("b")
  def b():
    return 2

  assert reg.names() == ("a", "b") and "a" in reg and reg.get("b") is b and len(reg) == 2
  with pytest.raises(ValueError, match=r"thing 'c' not in \('a', 'b'\)"):
    reg.get("c")
  with pytest.raises(ValueError, match="already registered"):
    reg.register("a", 3)


def test_existing_names_are_registered():
  assert objective.ADVANTAGES.names() == ("gae", "ref_diff_return", "ref_diff", "group_loo")
  assert objective.GROUPED == {"group_loo"}
  assert objective.STANDARDIZERS.names() == ("mean_std", "std", "none")
  assert objective.KL_ESTIMATORS.names() == ("log_ratio", "k3")
  assert objective.LOSSES.names() == ("clipped", "reinforce")
  assert rewards.TERMS.names() == ("em", "f1", "hit", "likelihood")
  assert rewards.reader_terms() == ["likelihood"]
  assert set(reader_lib.BACKENDS.names()) >= {"llama_cpp", "openai", "hf"}
  assert set(formats.FORMATS.names()) == {
      "dpr",
      "hotpotqa",
      "hotpotqa_ircot",
      "musique",
      "nq_open",
      "ambignq",
      "triviaqa_dpr",
  }


def test_a_new_advantage_estimator_is_one_registration():
  @objective.ADVANTAGES.register("double_ref_diff")
  def _double(r, v, *, gamma, lam):
    del gamma, lam
    return 2.0 * (r - v)

  try:
    adv = objective.advantages(
        jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5]), kind="double_ref_diff", where=jnp.array([True, False])
    )
    np.testing.assert_allclose(adv, [2.0, 0.0])  # 2 (1 - 0); invalid step 0
    config = default_config()
    config.rrpo.advantage = "double_ref_diff"
    assert config_validation.validate(config, num_devices=1)
  finally:
    objective.ADVANTAGES.unregister("double_ref_diff")
  with pytest.raises(
      config_validation.ConfigError,
      match=r"config\.rrpo\.advantage: must be gae, ref_diff_return, ref_diff or group_loo",
  ):
    config_validation.validate(config, num_devices=1)


def test_a_new_reward_term_is_one_registration_and_a_weight(tmp_path):
  rewards.register_term("short", weight="lambda_s")(lambda prediction, answers: float(len(prediction.split()) <= 2))
  try:
    config = default_config()
    with pytest.raises(config_validation.ConfigError, match=r"config\.reward\.lambda_s"):
      config_validation.validate(config, num_devices=1)
    config.reward.lambda_s = 0.5
    assert config_validation.validate(config, num_devices=1)
    w = rewards.weights(config.reward)
    assert w == {"em": 1.0, "f1": 1.0, "hit": 1.0, "likelihood": 0.0, "short": 0.5}
    values = rewards.terms("Paris", ["Paris"])
    assert values == {"em": 1.0, "f1": 1.0, "hit": 1.0, "short": 1.0}
    assert rewards.total(values, w) == 3.5  # 1 + 1 + 1 + 0.5 * 1
    step = scoring.ScoringStep(_EchoReader(), weights=w)
    assert step._reward(_Ex(), "Paris") == [3.5, 1.0, 1.0, 1.0, 1.0]
  finally:
    rewards.TERMS.unregister("short")


def test_a_reward_term_that_asks_the_reader_is_one_registration_and_a_weight():
  """A reader term: asks(answers) names the continuations the scoring step has the reader score
  after each prefix; fn(mean log-probs, answers) turns their scores into the term."""
  from rrpo_jax.data.example import Candidate, Example  # pylint: disable=import-outside-toplevel
  from rrpo_jax.reader import make_reader  # pylint: disable=import-outside-toplevel

  rewards.register_term("confident", weight="lambda_c", asks=lambda answers: answers[:1])(
      lambda means, answers: float(means[0] > -0.75)
  )
  try:
    config = default_config()
    config.reward.lambda_c = 2.0
    assert config_validation.validate(config, num_devices=1)
    w = rewards.weights(config.reward)
    assert rewards.reader_terms(w) == ["confident"]
    step = scoring.ScoringStep(make_reader({"backend": "fake"}), weights=w)
    ex = Example("q", "?", ["Paris"], [Candidate("0", "A", "x"), Candidate("1", "B", "paris")])
    res = step.score([ex], np.array([[1, 0]]), np.array([[0, 1]]))
    # fake reader: log p("Paris") = -3 with no passage holding it, -0.5 with one
    np.testing.assert_array_equal(res.terms["reward_confident"][0], [0.0, 1.0])
    np.testing.assert_array_equal(res.terms["value_confident"][0], [1.0, 1.0])
    np.testing.assert_array_equal(res.rewards[0], [0.0, 2.0])
  finally:
    rewards.TERMS.unregister("confident")


class _EchoReader:
  identity = "echo"

  class template:  # pylint: disable=invalid-name
    hash = "t"


class _Ex:
  answers = ["Paris"]


def test_backend_and_format_validation_read_the_registries():
  config = default_config()
  config.reader.backend = "nope"
  with pytest.raises(config_validation.ConfigError, match=r"config\.reader\.backend: must be llama_cpp, openai"):
    config_validation.validate(config, num_devices=1)
  config = default_config()
  config.data.format = "csv"
  with pytest.raises(config_validation.ConfigError, match=r"config\.data\.format: must be dpr, hotpotqa"):
    config_validation.validate(config, num_devices=1)
  formats.register_format("dpr_copy", candidates=True)(formats.FORMATS.get("dpr").parse)
  try:
    config.data.format = "dpr_copy"
    assert config_validation.validate(config, num_devices=1)
  finally:
    formats.FORMATS.unregister("dpr_copy")
