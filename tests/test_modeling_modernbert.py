"""ModernBERT cross-encoder: parity with transformers' ModernBertForSequenceClassification on tiny
random configs (global and sliding-window layers, padding, both poolings), gradients, bf16, the weight
table both ways, and an HF directory round trip through the Reranker and CrossEncoder."""

import functools
import os

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from rrpo_jax.models import hf_io
from rrpo_jax.models.modernbert import ModernBertCrossEncoder, init_params
import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB, PAD = tiny.MODERNBERT["vocab_size"], tiny.MODERNBERT["pad_token_id"]


def tiny_torch(pooling="cls", bias=False, seed=0):
  """A random tiny ModernBertForSequenceClassification (tiny.MODERNBERT: 3 layers (full, sliding,
  sliding), hidden 64, 4 heads, window |i - j| <= 4); weights N(0, 0.1) (norms 1 + N(0, 0.1)), wider
  than HF's init."""
  cfg = tiny.modernbert_config(bias=bias, classifier_pooling=pooling)
  model = tiny.random_model(transformers.ModernBertForSequenceClassification, cfg, seed=seed, scale=0.1, eager=True)
  return model, hf_io.config_from_hf(cfg.to_dict()), tiny.numpy_state(model)


def right_padded(shape, length, seed=0):
  return tiny.padded_ids(shape, length, vocab=VOCAB, pad=PAD, side="right", seed=seed)


def torch_scores(model, ids, mask):
  flat = lambda x: torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.long)
  with torch.no_grad():
    return model(input_ids=flat(ids), attention_mask=flat(mask)).logits[:, 0].numpy().reshape(ids.shape[:-1])


@functools.partial(jax.jit, static_argnums=0)
def ours(config, params, ids, mask):
  return ModernBertCrossEncoder(config).apply({"params": params}, ids, mask, deterministic=True)


@pytest.mark.parametrize("pooling,bias", [("cls", False), ("mean", True)])
def test_parity_with_transformers_padding_and_lengths(pooling, bias):
  model, config, state = tiny_torch(pooling, bias)
  assert config.kinds() == ("full_attention", "sliding_attention", "sliding_attention")
  params, report = hf_io.hf_to_flax(state, config)
  assert report.missing == [] and report.unexpected == []
  for length in (6, 24):  # shorter and longer than the window
    ids, mask = right_padded((2, 3), length, seed=length)
    got = ours(config, params, ids, mask)
    assert got.shape == (2, 3) and got.dtype == jnp.float32 and np.abs(np.asarray(got)).max() > 0.1
    np.testing.assert_allclose(got, torch_scores(model, ids, mask), atol=1e-5, rtol=0)
    full = np.ones_like(mask)
    np.testing.assert_allclose(ours(config, params, ids, full), torch_scores(model, ids, full), atol=1e-5, rtol=0)


def test_table_round_trip_gradients_bf16():
  _, config, state = tiny_torch(bias=True)
  params, _ = hf_io.hf_to_flax(state, config)
  back = hf_io.flax_to_hf(params, config)
  assert set(back) == set(state)
  for k in back:
    np.testing.assert_array_equal(back[k], state[k], err_msg=k)
  fresh = init_params(config, jax.random.key(0))
  assert jax.tree.structure(fresh) == jax.tree.structure(params)
  assert hf_io.config_from_hf(hf_io.config_to_hf(config)) == config
  ids, mask = right_padded((2, 3), 12, seed=3)
  loss = lambda p: jnp.sum(ModernBertCrossEncoder(config).apply({"params": p}, ids, mask) ** 2)
  g = jax.jit(jax.grad(loss))(params)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))
  f32 = np.asarray(ours(config, params, ids, mask))
  bf16 = ours(config.replace(dtype="bfloat16"), params, ids, mask)
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, f32, atol=0.03 * np.abs(f32).max() + 0.02, rtol=0)


def test_reranker_round_trip_through_hf_dir_and_cross_encoder(tmp_path):
  from rrpo_jax.models.reranker import Reranker
  from rrpo_jax.models.tokenization import join_title

  model, _, _ = tiny_torch()
  path, out = str(tmp_path / "hf"), str(tmp_path / "ours")
  model.save_pretrained(path)
  tok = tiny.pair_tokenizer()
  tok.save_pretrained(path)
  query, passages = "who wrote hamlet", [("Hamlet", "hamlet is a tragedy by shakespeare"), "paris is the capital"]
  r = Reranker.from_pretrained(path, max_length=32)
  assert r.config.family == "modernbert" and not r.load_report.missing and not r.load_report.unexpected
  enc = tok([query] * 2, [join_title(p) for p in passages], padding=True, return_tensors="pt")
  with torch.no_grad():
    ref = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0].numpy()
  np.testing.assert_allclose(r.score(query, passages), ref, atol=1e-5, rtol=0)
  r.save_pretrained(out)
  clf, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
  assert type(clf).__name__ == "ModernBertForSequenceClassification"
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  assert os.path.exists(os.path.join(out, "README.md"))
  st = pytest.importorskip("sentence_transformers")
  got = st.CrossEncoder(out, device="cpu").predict(
      [(query, join_title(p)) for p in passages], activation_fn=torch.nn.Identity()
  )
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
