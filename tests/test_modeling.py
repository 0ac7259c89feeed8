"""CrossEncoder and hf_io: parity with PyTorch transformers on tiny random models, masks, dtypes."""

import dataclasses
import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from rrpo_jax.core import cpu_kernels
from rrpo_jax.core import kernels
from rrpo_jax.models import cross_encoder
from rrpo_jax.models import hf_io
from rrpo_jax.models.cross_encoder import CrossEncoder, init_params

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB, L = 100, 32


def tiny_torch(family, seed=0):
  """A random tiny HF classification model (2 layers, hidden 64) and its weights as numpy."""
  torch.manual_seed(seed)
  common = dict(
      vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=1
  )
  if family == "bert":
    cfg = transformers.BertConfig(max_position_embeddings=64, **common)
    model = transformers.BertForSequenceClassification(cfg)
  else:
    cfg = transformers.XLMRobertaConfig(
        max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5, **common
    )
    model = transformers.XLMRobertaForSequenceClassification(cfg)
  model.eval()
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  return model, hf_io.config_from_hf(cfg.to_dict()), state


def random_inputs(config, shape, seed=0):
  """int32 inputs [*shape, L] with random lengths in [3, L] and two token-type segments."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, L + 1, shape)
  mask = (np.arange(L) < lengths[..., None]).astype(np.int32)
  ids = np.where(mask > 0, rng.integers(3, VOCAB, shape + (L,)), config.pad_token_id).astype(np.int32)
  types = np.zeros_like(ids)
  if config.type_vocab_size > 1:
    types = ((np.arange(L) >= lengths[..., None] // 2) & (mask > 0)).astype(np.int32)
  return ids, mask, types


def torch_scores(model, ids, mask, types):
  flat = lambda x: torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.long)
  with torch.no_grad():
    out = model(input_ids=flat(ids), attention_mask=flat(mask), token_type_ids=flat(types)).logits
  return out[:, 0].numpy().reshape(ids.shape[:-1])


@functools.partial(jax.jit, static_argnums=0)
def ours(config, params, ids, mask, types):
  return CrossEncoder(config).apply({"params": params}, ids, mask, types, deterministic=True)


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
def test_parity_with_transformers_any_leading_axes(family):
  model, config, state = tiny_torch(family)
  params, report = hf_io.hf_to_flax(state, config)
  assert report.missing == [] and report.unexpected == []
  ids, mask, types = random_inputs(config, (2, 3))  # [B, N, L]
  got = ours(config, params, ids, mask, types)
  assert got.shape == (2, 3) and got.dtype == jnp.float32
  ref = torch_scores(model, ids, mask, types)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
  dpa = ours(config.replace(attention="dot_product_attention"), params, ids, mask, types)
  np.testing.assert_allclose(dpa, ref, atol=1e-5, rtol=0)
  # [N, L] and [A, B, N, L] give the same scores as [B, N, L].
  np.testing.assert_array_equal(ours(config, params, ids[0], mask[0], types[0]), got[0])
  got4 = ours(config, params, ids[None], mask[None], types[None])
  np.testing.assert_allclose(got4[0], got, atol=1e-6)


@pytest.mark.parametrize("row_block", [1, 2, 4, 5, 64, 0])
def test_blocked_eval_forward_equals_one_pass(row_block):
  """cross_encoder.scores pads 6 rows to a multiple of the block, maps over blocks, drops the padding."""
  model, config, state = tiny_torch("bert")
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask, types = random_inputs(config, (2, 3))
  cfg = config.replace(row_block=row_block)
  got = jax.jit(lambda p: cross_encoder.scores(cfg, p, ids, mask, types))(params)
  assert got.shape == (2, 3)
  np.testing.assert_allclose(got, ours(config.replace(row_block=0), params, ids, mask, types), atol=1e-6, rtol=0)
  np.testing.assert_allclose(got, torch_scores(model, ids, mask, types), atol=1e-5, rtol=0)
  no_types = jax.jit(lambda p: cross_encoder.scores(cfg, p, ids, mask))(params)
  np.testing.assert_allclose(no_types, ours(config, params, ids, mask, np.zeros_like(types)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
def test_name_table_round_trip_is_exact(family):
  _, config, state = tiny_torch(family)
  params, _ = hf_io.hf_to_flax(state, config)
  back = hf_io.flax_to_hf(params, config)
  assert set(back) == set(state)
  for k in state:
    np.testing.assert_array_equal(back[k], state[k], err_msg=k)
  # The table covers exactly the module's parameter tree.
  fresh = init_params(config, jax.random.key(0))
  assert jax.tree.structure(fresh) == jax.tree.structure(params)
  hf_io.check_shapes(params, fresh)


def test_missing_unexpected_and_mismatched_names_are_reported():
  _, config, full = tiny_torch("bert")
  state = dict(full)
  del state["bert.encoder.layer.1.output.dense.weight"]
  state["cls.predictions.bias"] = np.zeros(3, np.float32)
  state["bert.embeddings.position_ids"] = np.arange(64)[None]  # a buffer: never reported
  params, report = hf_io.hf_to_flax(state, config)
  assert report.missing == ["encoder.layer.1.output.dense.weight"]
  assert report.unexpected == ["cls.predictions.bias"]
  assert not report.missing_head_only("bert")
  head_less = {k: v for k, v in full.items() if not k.startswith("classifier.")}
  assert hf_io.hf_to_flax(head_less, config)[1].missing_head_only("bert")
  params["layer_0"]["intermediate"]["kernel"] = np.zeros((64, 7), np.float32)
  with pytest.raises(ValueError, match="layer_0/intermediate/kernel"):
    hf_io.check_shapes(params, init_params(config, jax.random.key(0)))


def test_config_round_trip():
  _, config, _ = tiny_torch("xlm-roberta")
  hf = hf_io.config_to_hf(config)
  assert hf["architectures"] == ["XLMRobertaForSequenceClassification"] and hf["num_labels"] == 1
  assert hf_io.config_from_hf(hf) == config


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
def test_padding_invariance_and_fully_masked_rows(family):
  _, config, state = tiny_torch(family)
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask, types = random_inputs(config, (4,), seed=1)
  base = np.asarray(ours(config, params, ids, mask, types))
  # More padding (a longer bucket) leaves every score unchanged.
  pad = lambda x, v: np.concatenate([x, np.full((4, 32), v, np.int32)], axis=1)
  longer = ours(config, params, pad(ids, config.pad_token_id), pad(mask, 0), pad(types, 0))
  np.testing.assert_allclose(longer, base, atol=1e-6)
  # Garbage in the padded positions is ignored, and a pair's score does not depend on its batch.
  junk = np.where(mask > 0, ids, 7).astype(np.int32)
  np.testing.assert_allclose(ours(config, params, junk, mask, types), base, atol=1e-6)
  np.testing.assert_allclose(ours(config, params, ids[1:2], mask[1:2], types[1:2]), base[1:2], atol=1e-6)
  # A fully masked candidate row gives a finite score (callers mask it with `where`).
  empty = ours(
      config,
      params,
      np.full((1, L), config.pad_token_id, np.int32),
      np.zeros((1, L), np.int32),
      np.zeros((1, L), np.int32),
  )
  assert np.all(np.isfinite(empty))


def test_bfloat16_compute_close_to_float32():
  _, config, state = tiny_torch("bert")
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask, types = random_inputs(config, (2, 4), seed=2)
  f32 = np.asarray(ours(config, params, ids, mask, types))
  bf16 = ours(config.replace(dtype="bfloat16"), params, ids, mask, types)
  assert bf16.dtype == jnp.float32  # params stay float32, scores are float32
  # bf16 has an 8-bit mantissa (relative step 2^-8 = 0.004); two layers stay within 0.02.
  np.testing.assert_allclose(bf16, f32, atol=0.02, rtol=0)


def test_remat_gives_the_same_gradients_and_dropout_follows_the_key():
  _, config, state = tiny_torch("bert")
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask, types = random_inputs(config, (2, 3), seed=3)
  key = jax.random.key(0)

  def loss(p, cfg):
    s = CrossEncoder(cfg).apply({"params": p}, ids, mask, types, deterministic=False, rngs={"dropout": key})
    return jnp.sum(s**2)

  g = jax.jit(jax.grad(loss), static_argnums=1)(params, config)
  g_remat = jax.jit(jax.grad(loss), static_argnums=1)(params, config.replace(remat=True))
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_remat)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)

  run = jax.jit(
      lambda k: CrossEncoder(config).apply(
          {"params": params}, ids, mask, types, deterministic=False, rngs={"dropout": k}
      )
  )
  np.testing.assert_array_equal(run(key), run(key))
  assert not np.allclose(run(key), run(jax.random.key(1)))
  assert not np.allclose(run(key), ours(config, params, ids, mask, types))


@pytest.mark.parametrize("width", [256, 255])  # byte-field path and the odd-width fallback
def test_dropout_keeps_230_of_256_and_preserves_the_mean(width):
  dropout = cpu_kernels.dropout
  x = jnp.ones((64, width))
  y = np.asarray(dropout(x, 0.1, jax.random.key(0)))
  keep = 230 / 256  # round(256 * 0.9) / 256
  assert set(np.unique(y)) <= {0.0, np.float32(256 / 230)}
  # 64 * width ~ 16k Bernoulli draws: std of the kept share ~ sqrt(0.09 / 16k) = 0.0024.
  assert abs((y > 0).mean() - keep) < 0.01
  assert abs(y.mean() - 1.0) < 0.012
  assert dropout(x, 0.0, jax.random.key(0)) is x


def _plain_softmax_dropout(logits, rate, key, *, dtype):
  """The CPU kernels' softmax_dropout (the same 8-bit mask) with autodiff's gradient."""
  return cpu_kernels.dropout(jax.nn.softmax(logits, axis=-1).astype(dtype), rate, key)


# The CPU kernel set with autodiff's gradients for the attention (the library's batched_matmul).
_PLAIN_CPU = dataclasses.replace(
    cpu_kernels.CPU, name="cpu-autodiff", batched_matmul=kernels.batched_matmul, softmax_dropout=_plain_softmax_dropout
)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("i,j,e", [(16, 16, 4), (16, 4, 16)])  # either operand the smaller one
def test_cpu_batched_matmul_gradients_equal_autodiff(dtype, transpose_b, i, j, e):
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((2, 3, i, j)), dtype)
  b = jnp.asarray(rng.standard_normal((2, 3, e, j) if transpose_b else (2, 3, j, e)), dtype)
  w = jnp.asarray(rng.standard_normal((2, 3, i, e)), jnp.float32)

  def grads(matmul):
    f = lambda a, b: jnp.sum(w * matmul(a, b, transpose_b=transpose_b, preferred_element_type=jnp.float32))
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(a, b)

  (v, (da, db)), (v_ref, (da_ref, db_ref)) = grads(cpu_kernels.batched_matmul), grads(kernels.batched_matmul)
  assert da.dtype == a.dtype and db.dtype == b.dtype
  tol = 1e-5 if dtype == "float32" else 2e-2  # bf16: the cotangent is rounded to bf16 before the product
  np.testing.assert_allclose(v, v_ref, rtol=1e-6)
  for x, y in ((da, da_ref), (db, db_ref)):
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    np.testing.assert_allclose(x, y, atol=tol * np.abs(y).max(), rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_cpu_softmax_dropout_gradient_equals_autodiff(dtype, rate):
  rng = np.random.default_rng(1)
  logits = jnp.asarray(3 * rng.standard_normal((2, 3, 8, 16)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((2, 3, 8, 16)), jnp.float32)
  key = jax.random.key(4)

  def grads(fn):
    f = lambda z: jnp.sum(w * fn(z, rate, key, dtype=jnp.dtype(dtype)).astype(jnp.float32))
    return jax.jit(jax.value_and_grad(f))(logits)

  (v, g), (v_ref, g_ref) = grads(cpu_kernels.softmax_dropout), grads(_plain_softmax_dropout)
  y, y_ref = (
      np.asarray(fn(logits, rate, key, dtype=jnp.dtype(dtype)), np.float32)
      for fn in (cpu_kernels.softmax_dropout, _plain_softmax_dropout)
  )
  np.testing.assert_array_equal(y == 0, y_ref == 0)  # the same mask
  np.testing.assert_allclose(y, y_ref, rtol=1e-6)
  np.testing.assert_allclose(v, v_ref, rtol=1e-5)
  tol = 1e-6 if dtype == "float32" else 1e-2
  np.testing.assert_allclose(g, g_ref, atol=tol * float(np.abs(g_ref).max()), rtol=0)
  # softmax invariance: each row's gradient sums to zero, dropout or not (y dy - p sum(y dy), sum p = 1)
  np.testing.assert_allclose(np.asarray(g, np.float64).sum(-1), 0.0, atol=1e-5 if dtype == "float32" else 1e-2)


def test_training_gradients_equal_autodiff_and_transformers():
  """Train-mode parameter gradients: with dropout, the CPU custom gradients (batched_matmul,
  softmax_dropout) equal plain autodiff under the same key; without dropout, they equal
  PyTorch's for the same loss."""
  model, config, state = tiny_torch("bert")
  params, _ = hf_io.hf_to_flax(state, config)
  ids, mask, types = random_inputs(config, (2, 3), seed=5)

  def grads(cfg, key=jax.random.key(0)):
    def loss(p):
      s = CrossEncoder(cfg).apply({"params": p}, ids, mask, types, deterministic=False, rngs={"dropout": key})
      return jnp.sum(s**2)

    return jax.jit(jax.grad(loss))(params)

  with kernels.using(cpu_kernels.CPU):
    g = grads(config)
  with kernels.using(_PLAIN_CPU):
    g_ref = grads(config)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=1e-6 * max(1.0, float(np.abs(b).max())), rtol=1e-4)

  no_dropout = config.replace(hidden_dropout=0.0, attention_dropout=0.0)
  g = grads(no_dropout)
  flat = lambda x: torch.tensor(x.reshape(-1, x.shape[-1]), dtype=torch.long)
  model.train()
  for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
      m.p = 0.0
  model.zero_grad()
  out = model(input_ids=flat(ids), attention_mask=flat(mask), token_type_ids=flat(types)).logits[:, 0]
  (out**2).sum().backward()
  t_grads, _ = hf_io.hf_to_flax({k: p.grad.numpy() for k, p in model.named_parameters()}, config)
  for path, a in jax.tree_util.tree_leaves_with_path(g):
    b = functools.reduce(lambda t, k: t[k.key], path, t_grads)
    np.testing.assert_allclose(a, b, atol=2e-5 * max(1.0, float(np.abs(b).max())), rtol=1e-3, err_msg=str(path))
