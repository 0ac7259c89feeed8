"""Flax linen cross-encoder: a BERT or XLM-RoBERTa encoder with Hugging Face's classification head.

One scalar per (query, passage) pair: inputs int32[..., N, L] -> scores float32[..., N].

  h_0 = LN(E_tok[ids] + E_pos[pos] + E_type[tt])
  h_l = LN(a + FFN(a)),  a = LN(h_{l-1} + Attn(h_{l-1}))          (post-LN, as BERT)
  BERT:    s = W_c tanh(W_p h_L[CLS] + b_p) + b_c                  (BertForSequenceClassification)
  XLM-R:   s = W_o tanh(W_d h_L[<s>] + b_d) + b_o                  (RobertaClassificationHead)

XLM-R position ids start at padding_idx + 1 and count only non-pad tokens (pad positions get
padding_idx), exactly as HF's create_position_ids_from_input_ids.

Speed notes (XLA:CPU): Q, K and V are one fused [H, 3H] matrix product (the three HF weight
matrices are concatenated at apply time, so the parameter tree keeps HF's names) with 1/sqrt(d)
folded into W_q; the padding mask is an additive bias. Attention (config.attention="auto") runs
as heads-first [M, h, L, d] batched matmuls (dropout on the probabilities in training);
einsum over [M, L, h, d] was 1.5x slower. `scores` (the entry point the reranker uses) runs the
eval-mode forward over blocks of `row_block` sequences with lax.map, so a block's activations
and [c, h, L, L] attention logits stay in cache between ops: 1.4x the pairs/s of one [32, 256]
pass on this 2-core CPU (jax.nn.dot_product_attention was faster unblocked, slower blocked).
Compute dtype is configurable (bf16 with float32 params); the head and the scores are float32.
Training (the backward, on a 2-core AMD EPYC with AVX-512): dense layers are 2-D products over
the flattened rows (`_matmul`). The attention's products, softmax-dropout and dropout are the
active kernel set's (core/kernels.py); with the CPU set (core/cpu_kernels.py, config.kernels) their
custom gradients avoid XLA:CPU's slow batched transposed-operand product and two passes over the
[M, h, L, L] arrays: together 1.2x the train step's pairs/s at 32 x 256.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rrpo_jax.core import kernels

FAMILIES = ("bert", "xlm-roberta")

_ACTIVATIONS: dict[str, Callable[..., jax.Array]] = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_fast": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class CrossEncoderConfig:
  """Sizes and options of a cross-encoder (defaults: all-MiniLM-L6-v2 size, BERT family)."""

  family: str = "bert"  # "bert" | "xlm-roberta"
  vocab_size: int = 30522  # word-piece vocabulary
  hidden_size: int = 384  # H
  num_layers: int = 6  # transformer blocks
  num_heads: int = 12  # h; head size d = H / h
  intermediate_size: int = 1536  # FFN width
  max_position_embeddings: int = 512  # rows of the position table (XLM-R: 514 incl. offset)
  type_vocab_size: int = 2  # token-type rows (XLM-R: 1)
  layer_norm_eps: float = 1e-12  # XLM-R: 1e-5
  hidden_act: str = "gelu"  # key of _ACTIVATIONS ("gelu" is exact erf GELU)
  hidden_dropout: float = 0.1  # dropout on embeddings, attention output and FFN output
  attention_dropout: float = 0.1  # dropout on attention probabilities
  classifier_dropout: float | None = None  # head dropout; None -> hidden_dropout (as HF)
  initializer_range: float = 0.02  # std of the normal init of kernels and embeddings
  pad_token_id: int = 0  # BERT 0, XLM-R 1 (also XLM-R's padding_idx for positions)
  num_labels: int = 1  # outputs of the head; scores use output 0
  dtype: str = "float32"  # compute dtype: "float32" | "bfloat16"
  param_dtype: str = "float32"  # parameter dtype (keep float32)
  remat: bool = False  # recompute each layer's activations in the backward pass
  # "matmul": heads-first batched matmuls (dropout on probabilities); "dot_product_attention":
  # jax.nn.dot_product_attention (no attention dropout); "auto": "matmul" (the faster on XLA:CPU
  # inside row blocks, in both modes).
  attention: str = "auto"
  # eval-mode forward in `scores` runs blocks of this many sequences (lax.map); 0: one pass;
  # None: 2 on CPU (1.2-1.5x on 2 cores; 1, 3, 4 and 8 were 2-6% slower), one pass on GPU/TPU.
  # Training mode is not blocked (measured no faster: the backward dominates).
  row_block: int | None = None

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
    if self.attention not in ("auto", "matmul", "dot_product_attention"):
      raise ValueError(f"attention must be auto, matmul or dot_product_attention, got {self.attention!r}")
    if self.hidden_act not in _ACTIVATIONS:
      raise ValueError(f"hidden_act {self.hidden_act!r} not supported: {sorted(_ACTIVATIONS)}")

  def replace(self, **changes: Any) -> "CrossEncoderConfig":
    return dataclasses.replace(self, **changes)


def _kernel_init(config):
  return nn.initializers.normal(config.initializer_range)


class _DenseParams(nn.Module):
  """Declares a Dense layer's kernel [in, out] and bias [out] and returns them unapplied."""

  features: int
  config: CrossEncoderConfig

  @nn.compact
  def __call__(self, in_features: int):
    pdt = jnp.dtype(self.config.param_dtype)
    kernel = self.param("kernel", _kernel_init(self.config), (in_features, self.features), pdt)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), pdt)
    return kernel, bias


class _Dense(nn.Module):
  """x @ kernel + bias in the compute dtype (param names as nn.Dense)."""

  features: int
  config: CrossEncoderConfig
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    dt = self.dtype or jnp.dtype(self.config.dtype)
    pdt = jnp.dtype(self.config.param_dtype)
    kernel = self.param("kernel", _kernel_init(self.config), (x.shape[-1], self.features), pdt)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), pdt)
    return _matmul(x.astype(dt), kernel.astype(dt)) + bias.astype(dt)


def _matmul(x, w):
  """x [..., K] @ w [K, N] -> [..., N] as one 2-D product over the flattened leading axes.

  Why 2-D: the backward's weight gradient x^T g then contracts one axis; from a 3-D x it contracts
  two, which XLA:CPU canonicalises with a transposed copy of g and a transposed-operand GEMM
  (1.45x slower forward + backward of the FFN here).
  """
  return jnp.dot(x.reshape(-1, x.shape[-1]), w).reshape(x.shape[:-1] + (w.shape[-1],))


class Dropout(nn.Module):
  """The kernels' dropout (core/kernels.py) as a module drawing its key from the "dropout" rng stream."""

  rate: float
  deterministic: bool = True

  def __call__(self, x):
    if self.deterministic or self.rate <= 0.0:
      return x
    return kernels.active().dropout(x, self.rate, self.make_rng("dropout"))


def _layer_norm(config, name, dtype=None):
  return nn.LayerNorm(
      epsilon=config.layer_norm_eps,
      dtype=dtype or jnp.dtype(config.dtype),
      param_dtype=jnp.dtype(config.param_dtype),
      name=name,
  )


class SelfAttention(nn.Module):
  """Multi-head self-attention with a fused QKV product, heads-first layout.

  x [M, L, H], bias [M, 1, 1, L] (0 for tokens, a large negative for padding) -> [M, L, H].
  probs = softmax((x W_q) (x W_k)^T / sqrt(d) + bias) per head; out = concat_heads(probs x W_v) W_o.
  """

  config: CrossEncoderConfig
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    m, length, hidden = x.shape
    heads, d = cfg.num_heads, hidden // cfg.num_heads
    qk, qb = _DenseParams(hidden, cfg, name="query")(hidden)
    kk, kb = _DenseParams(hidden, cfg, name="key")(hidden)
    vk, vb = _DenseParams(hidden, cfg, name="value")(hidden)
    scale = 1.0 / float(d) ** 0.5
    w = jnp.concatenate([qk * scale, kk, vk], axis=1).astype(dt)  # [H, 3H]
    b = jnp.concatenate([qb * scale, kb, vb]).astype(dt)
    qkv = _matmul(x.astype(dt), w) + b  # [M, L, 3H]
    if cfg.attention == "dot_product_attention":
      if not self.deterministic and cfg.attention_dropout > 0:
        raise ValueError("attention='dot_product_attention' has no attention dropout")
      qkv = qkv.reshape(m, length, 3, heads, d)
      ctx = jax.nn.dot_product_attention(
          qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], bias=bias.astype(dt), scale=1.0, implementation="xla"
      )  # [M, L, h, d]
      return _Dense(hidden, cfg, name="output")(ctx.reshape(m, length, hidden))
    kern = kernels.active()
    qkv = qkv.reshape(m, length, 3, heads, d).transpose(2, 0, 3, 1, 4)  # [3, M, h, L, d]
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = kern.batched_matmul(q, k, transpose_b=True, preferred_element_type=jnp.float32)  # [M, h, L, L]
    logits = logits + bias
    if self.deterministic:
      # softmax(z) v = (e v) / sum(e), e = exp(z - max z): the division moves from the [M, h, L, L]
      # probabilities to the [M, h, L, d] context (d << L): 9% faster eval forward here (in
      # training it measured 4% slower, so training keeps the plain softmax).
      e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
      ctx = kern.batched_matmul(e.astype(dt), v, preferred_element_type=jnp.float32)
      ctx = (ctx / jnp.sum(e, axis=-1, keepdims=True)).astype(dt)  # [M, h, L, d]
    else:
      rate = cfg.attention_dropout
      probs = kern.softmax_dropout(logits, rate, self.make_rng("dropout") if rate > 0 else None, dtype=dt)
      ctx = kern.batched_matmul(probs, v)  # [M, h, L, d]
    ctx = ctx.transpose(0, 2, 1, 3).reshape(m, length, hidden)
    return _Dense(hidden, cfg, name="output")(ctx)


class TransformerLayer(nn.Module):
  """Post-LN transformer block: a = LN(x + Attn(x)); y = LN(a + W_2 act(W_1 a))."""

  config: CrossEncoderConfig
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias):
    cfg = self.config
    drop = Dropout(cfg.hidden_dropout, self.deterministic)
    attn = SelfAttention(cfg, self.deterministic, name="attention")(x, bias)
    x = _layer_norm(cfg, "attention_ln")(x + drop(attn))
    hmid = _ACTIVATIONS[cfg.hidden_act](_Dense(cfg.intermediate_size, cfg, name="intermediate")(x))
    out = _Dense(cfg.hidden_size, cfg, name="output")(hmid)
    return _layer_norm(cfg, "output_ln")(x + drop(out))


class CrossEncoder(nn.Module):
  """Cross-encoder reranker: int32[..., N, L] inputs -> float32[..., N] scores.

  `attention_mask` is 1 for real tokens and 0 for padding; a fully padded row gets a finite
  (meaningless) score, so mask candidates with `where` downstream. `deterministic=False` turns
  on dropout and needs a "dropout" rng.
  """

  config: CrossEncoderConfig

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, *, deterministic: bool = True):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    pdt = jnp.dtype(cfg.param_dtype)
    lead, length = input_ids.shape[:-1], input_ids.shape[-1]
    ids = input_ids.reshape(-1, length)
    mask = attention_mask.reshape(-1, length)
    tt = jnp.zeros_like(ids) if token_type_ids is None else token_type_ids.reshape(-1, length)

    if cfg.family == "xlm-roberta":
      not_pad = (ids != cfg.pad_token_id).astype(jnp.int32)
      pos = jnp.cumsum(not_pad, axis=-1) * not_pad + cfg.pad_token_id
    else:
      pos = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), ids.shape)

    emb_init = _kernel_init(cfg)
    embed = lambda n, name: nn.Embed(
        n, cfg.hidden_size, embedding_init=emb_init, dtype=jnp.float32, param_dtype=pdt, name=name
    )
    x = (
        embed(cfg.vocab_size, "word_embeddings")(ids)
        + embed(cfg.max_position_embeddings, "position_embeddings")(pos)
        + embed(cfg.type_vocab_size, "token_type_embeddings")(tt)
    )
    x = _layer_norm(cfg, "embeddings_ln")(x)
    x = Dropout(cfg.hidden_dropout, deterministic)(x).astype(dt)

    # -1e9, not -inf or finfo.min: exp underflows to 0 all the same, it survives a bf16 cast, and a
    # fully padded row stays finite (uniform attention).
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(jnp.float32)
    layer_cls = nn.remat(TransformerLayer) if cfg.remat else TransformerLayer
    for i in range(cfg.num_layers):
      x = layer_cls(cfg, deterministic, name=f"layer_{i}")(x, bias)

    cls = x[:, 0].astype(jnp.float32)
    head_drop = Dropout(cfg.hidden_dropout if cfg.classifier_dropout is None else cfg.classifier_dropout, deterministic)
    f32 = jnp.float32
    if cfg.family == "bert":
      pooled = jnp.tanh(_Dense(cfg.hidden_size, cfg, dtype=f32, name="pooler")(cls))
      logits = _Dense(cfg.num_labels, cfg, dtype=f32, name="classifier")(head_drop(pooled))
    else:
      hcls = jnp.tanh(_Dense(cfg.hidden_size, cfg, dtype=f32, name="classifier_dense")(head_drop(cls)))
      logits = _Dense(cfg.num_labels, cfg, dtype=f32, name="classifier_out")(head_drop(hcls))
    return logits[:, 0].astype(jnp.float32).reshape(lead)


def init_params(config: CrossEncoderConfig, key, *, length: int = 8):
  """Fresh parameters (HF's init: N(0, 0.02) kernels and embeddings, zero biases, unit LN)."""
  ids = jnp.zeros((1, length), jnp.int32)
  init = jax.jit(lambda k: CrossEncoder(config).init(k, ids, jnp.ones_like(ids), ids, deterministic=True)["params"])
  return init(key)


def scores(
    config: CrossEncoderConfig, params, input_ids, attention_mask, token_type_ids=None, *, key=None
) -> jax.Array:
  """Scores float32[...] for inputs int32[..., L]: CrossEncoder(config).apply, blocked in eval mode.

  key=None: eval mode; rows are padded to a multiple of c = config.row_block (fully masked rows,
  dropped again) and run c at a time through lax.map, giving the same scores as one pass
  (row_block None: 2 on CPU, one pass elsewhere).
  A PRNG key: training mode with dropout driven by the key, one pass.
  """
  tt = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
  return apply_scores(
      CrossEncoder(config), params, (input_ids, attention_mask, tt), key=key, row_block=config.row_block
  )


def apply_scores(module: nn.Module, params, arrays, *, key, row_block: int | None) -> jax.Array:
  """module.apply(params, *arrays) -> float32[...] for int32 arrays [..., L], the backends' scores() contract.

  key=None: eval mode, run through map_row_blocks (row_block rows at a time); a PRNG key: training
  mode with dropout driven by the key, one pass.
  """
  if key is not None:
    # flax types apply() as out or (out, mutated variables); no mutable= here, so out.
    return module.apply(  # type: ignore[return-value]
        {"params": params}, *arrays, deterministic=False, rngs={"dropout": key}
    )
  return map_row_blocks(
      lambda *a: module.apply({"params": params}, *a, deterministic=True), arrays, row_block=row_block
  )


def map_row_blocks(apply, arrays, *, row_block: int | None) -> jax.Array:
  """apply(*arrays) for int32 arrays [..., L] -> float32[...], run c = row_block rows at a time.

  Rows are padded to a multiple of c with zeros (fully masked rows, dropped again) and mapped with
  lax.map; row_block None: 2 on CPU, one pass on GPU/TPU; 0 (or <= c rows): one pass.
  """
  lead, length = arrays[0].shape[:-1], arrays[0].shape[-1]
  m = int(np.prod(lead, dtype=np.int64))
  c = row_block
  if c is None:
    c = 2 if jax.default_backend() == "cpu" else 0
  if c <= 0 or m <= c:
    return apply(*arrays)
  nb = -(-m // c)

  def blocks(x):
    x = x.reshape(m, length)
    return jnp.pad(x, ((0, nb * c - m), (0, 0))).reshape(nb, c, length)

  out = jax.lax.map(lambda a: apply(*a), tuple(blocks(x) for x in arrays))
  return out.reshape(nb * c)[:m].reshape(lead)
