"""Qwen3 decoder reranker: parity with transformers' PyTorch Qwen3 on tiny random configs, padding,
gradients, bf16, and the weight table both ways."""

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from rrpo_jax.models import hf_io
from rrpo_jax.models.qwen3 import Qwen3Reranker, init_params, scores
import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB, YES, NO, PAD = 64, 5, 7, 0


def tiny_torch(tied=True, bias=False, seed=0):
  """A random tiny Qwen3ForCausalLM (tiny.QWEN3: 2 layers, hidden 64, 4 query / 2 kv heads of 16)
  whose weights are drawn wider than HF's init (N(0, 0.2), norms 1 + N(0, 0.1)) so scores are O(1)."""
  cfg = tiny.qwen3_config(VOCAB, pad_token_id=PAD, tied=tied, bias=bias)
  model = tiny.random_model(transformers.Qwen3ForCausalLM, cfg, seed=seed, scale=0.2, eager=True)
  config = hf_io.config_from_hf(cfg.to_dict(), yes_id=YES, no_id=NO)
  return model, config, tiny.numpy_state(model)


def left_padded(shape, length, seed=0, min_len=3):
  """ids, mask int32[*shape, length]: random lengths in [min_len, length], padding on the left."""
  return tiny.padded_ids(shape, length, vocab=VOCAB, pad=PAD, side="left", seed=seed, min_len=min_len)


def torch_scores(model, ids, mask, *, positions=False):
  """HF logit(yes) - logit(no) at the last position, rows [M, L]; positions=True passes
  position_ids = cumsum(mask) - 1 (ours), else HF's default arange."""
  t_ids, t_mask = (torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.long) for x in (ids, mask))
  kw = {"position_ids": (t_mask.cumsum(-1) - 1).clamp(min=0)} if positions else {}
  with torch.no_grad():
    z = model(input_ids=t_ids, attention_mask=t_mask, **kw).logits[:, -1].double()
  return (z[:, YES] - z[:, NO]).numpy().reshape(ids.shape[:-1])


def torch_unpadded(model, ids, mask):
  """HF scores of each row alone, its padding cut off (no mask at all)."""
  flat_ids, flat_mask = ids.reshape(-1, ids.shape[-1]), mask.reshape(-1, ids.shape[-1])
  out = [
      torch_scores(model, i[m > 0][None], np.ones((1, int(m.sum())), np.int32))[0] for i, m in zip(flat_ids, flat_mask)
  ]
  return np.array(out).reshape(ids.shape[:-1])


@functools.partial(jax.jit, static_argnums=0)
def ours(config, params, ids, mask):
  return Qwen3Reranker(config).apply({"params": params}, ids, mask, deterministic=True)


@pytest.mark.parametrize("tied,bias", [(True, False), (False, True)])
def test_parity_with_transformers_left_padding_several_lengths(tied, bias):
  model, config, state = tiny_torch(tied, bias)
  params, report = hf_io.hf_to_flax(state, config)
  assert report.missing == [] and report.unexpected == []
  assert ("lm_head" in params) == (not tied)
  for length in (5, 16, 33):
    ids, mask = left_padded((2, 3), length, seed=length)  # [B, N, L]
    got = ours(config, params, ids, mask)
    assert got.shape == (2, 3) and got.dtype == jnp.float32
    assert np.abs(np.asarray(got)).max() > 0.1  # O(1) scores: the tolerance below means something
    np.testing.assert_allclose(got, torch_unpadded(model, ids, mask), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, torch_scores(model, ids, mask, positions=True), atol=1e-5, rtol=0)
    # HF's default positions (arange, shifted by the padding): RoPE sees the same differences.
    np.testing.assert_allclose(got, torch_scores(model, ids, mask), atol=1e-5, rtol=0)
    full = np.ones_like(mask)  # no padding at all
    np.testing.assert_allclose(ours(config, params, ids, full), torch_scores(model, ids, full), atol=1e-5, rtol=0)


def test_padding_invariance_row_blocks_and_masked_rows():
  _, config, state = tiny_torch()
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask = left_padded((5,), 12, seed=1)
  base = np.asarray(ours(config, params, ids, mask))
  # More left padding and garbage under the mask change nothing (up to float32 sums over other
  # lengths: O(1e-6) on scores of a few units); nor does the batch.
  pad = lambda x, v: np.concatenate([np.full((5, 20), v, np.int32), x], axis=1)
  np.testing.assert_allclose(ours(config, params, pad(ids, PAD), pad(mask, 0)), base, atol=1e-5)
  junk = np.where(mask > 0, ids, 9).astype(np.int32)
  np.testing.assert_allclose(ours(config, params, junk, mask), base, atol=1e-6)
  np.testing.assert_allclose(ours(config, params, ids[2:3], mask[2:3]), base[2:3], atol=1e-6)
  # Right padding reads the rightmost real token: same scores.
  right_ids = np.stack([np.roll(i, -int((m == 0).sum())) for i, m in zip(ids, mask)])
  right_mask = np.stack([np.roll(m, -int((m == 0).sum())) for m in mask])
  np.testing.assert_allclose(ours(config, params, right_ids, right_mask), base, atol=1e-5)
  # The eval entry point in row blocks of 1, 2, 3 (padded with empty rows) = one pass.
  for block in (1, 2, 3, 0):
    got = jax.jit(lambda p, c=config.replace(row_block=block): scores(c, p, ids, mask))(params)
    np.testing.assert_allclose(got, base, atol=1e-6)
  empty = ours(config, params, np.zeros((1, 12), np.int32), np.zeros((1, 12), np.int32))
  assert np.all(np.isfinite(empty))


def test_gradients_finite_remat_equal_dropout_follows_key():
  _, config, state = tiny_torch(tied=False)
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask = left_padded((2, 3), 10, seed=3)

  def loss(p, c):
    return jnp.sum(Qwen3Reranker(c).apply({"params": p}, ids, mask) ** 2)

  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g, g_remat = grad(params, config), grad(params, config.replace(remat=True))
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_remat)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  # Only the yes / no rows of the untied head get gradient.
  head = np.abs(np.asarray(g["lm_head"]["embedding"])).sum(-1)
  assert set(np.nonzero(head)[0]) == {YES, NO}
  # Dropout (training mode) follows the key: same key, same scores; another key or eval mode, others.
  cfg = config.replace(hidden_dropout=0.1, attention_dropout=0.1)
  run = jax.jit(lambda k: scores(cfg, params, ids, mask, key=k))
  s0 = run(jax.random.key(0))
  np.testing.assert_array_equal(run(jax.random.key(0)), s0)
  assert not np.allclose(run(jax.random.key(1)), s0)
  assert not np.allclose(ours(config, params, ids, mask), s0)


def test_bfloat16_compute_close_to_float32():
  _, config, state = tiny_torch()
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask = left_padded((2, 4), 16, seed=2)
  f32 = np.asarray(ours(config, params, ids, mask))
  bf16 = ours(config.replace(dtype="bfloat16"), params, ids, mask)
  assert bf16.dtype == jnp.float32
  # bf16 rounds activations to 2^-8 relative; two layers on O(1)-O(10) scores stay within 3%.
  np.testing.assert_allclose(bf16, f32, atol=0.03 * np.abs(f32).max() + 0.02, rtol=0)


@pytest.mark.parametrize("tied,bias", [(True, False), (False, True)])
def test_name_table_round_trip_and_seq_cls_head(tied, bias):
  model, config, state = tiny_torch(tied, bias)
  params, _ = hf_io.hf_to_flax(state, config)
  back = hf_io.flax_to_hf(params, config)
  expected = {k for k in state if not (tied and k == "lm_head.weight")}
  assert set(back) == expected
  for k in back:
    np.testing.assert_array_equal(back[k], state[k], err_msg=k)
  fresh = init_params(config, jax.random.key(0))
  assert jax.tree.structure(fresh) == jax.tree.structure(params)
  hf_io.check_shapes(params, fresh)
  seq = hf_io.flax_to_hf(params, config, head="seq_cls")
  w = state["lm_head.weight"]  # tied: the same tensor as the embedding
  np.testing.assert_array_equal(seq["score.weight"], (w[YES] - w[NO])[None])
  assert "lm_head.weight" not in seq and set(seq) - {"score.weight"} == expected - {"lm_head.weight"}
  assert hf_io.config_from_hf(hf_io.config_to_hf(config), yes_id=YES, no_id=NO) == config


def test_unsupported_configs_are_refused():
  _, config, _ = tiny_torch()
  hf = hf_io.config_to_hf(config)
  with pytest.raises(ValueError, match="rope type"):
    hf_io.config_from_hf({**hf, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6}})
  with pytest.raises(ValueError, match="sliding"):
    hf_io.config_from_hf({**hf, "use_sliding_window": True})
  with pytest.raises(ValueError, match="head"):
    hf_io.config_to_hf(
        hf_io.config_from_hf(
            {
                "model_type": "bert",
                "vocab_size": 10,
                "hidden_size": 8,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 8,
            }
        ),
        head="seq_cls",
    )
