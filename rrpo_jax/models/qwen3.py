"""Flax linen Qwen3 decoder as a reranker (Qwen3-Reranker): int32[..., N, L] -> float32[..., N].

Each candidate is one left-padded prompt (tokenization.PromptEncoder: the model card's
system / user / assistant template with the instruction, query and document). The decoder is
Qwen3's, weight for weight (transformers' Qwen3ForCausalLM):

  h_0 = E[ids]
  a   = h + Attn(RMS(h))          q, k = RoPE(RMS_head(x W_q)), RoPE(RMS_head(x W_k)); grouped-query
  h'  = a + W_down (silu(W_gate RMS(a)) * W_up RMS(a))                                     (SwiGLU)
  z   = RMS(h_L[last]) @ W_lm^T   logits of the next token after the prompt ("yes" or "no")
  s   = z[yes] - z[no] = RMS(h_L[last]) . (W_lm[yes] - W_lm[no])

The policy's score s_i is this logit difference. The card reports P(yes) = softmax(z[no], z[yes])[1]
= sigmoid(s), a monotone map of s, so the ranking is the card's; the Plackett-Luce policy needs an
unbounded real score (pi ~ exp(s / tau)), which the probability is not: exp(P / tau) would bound
the policy's odds between any two passages by e^(1/tau). W_lm is the tied embedding E when the
checkpoint ties them (tie_word_embeddings), else its own [V, H] table `lm_head` (kept whole so a
CausalLM export is the checkpoint with its trained rows; only rows yes/no get gradients).

Causal mask with left padding: token j sees tokens i <= j that are not padding; positions count
real tokens only (pos = cumsum(mask) - 1), so a prompt's hidden states do not depend on its padding
(RoPE depends on position differences only, so this equals HF's default arange positions up to
rounding). `last` is the rightmost real token (the last position under left padding; right padding
works too). A fully padded row gets a finite, meaningless score (mask it with `where`).

Speed and memory: Q, K, V are one fused matrix product and so are gate and up (HF's weights are
concatenated at apply time; the parameter tree keeps HF's names); attention is heads-first batched
matmuls with the query heads of one key/value head stacked ([M, kv, rep * L, d] x [M, kv, d, L]);
only the last position goes through the final norm and the head. Compute dtype is configurable
(bf16 with float32 params); softmax, norms' statistics, the head and the scores are float32.
`remat` recomputes each layer in the backward pass. Dropout (hidden on both residual branches,
attention on the probabilities; 0 in Qwen3 itself) is the training-mode policy's, as for the
cross-encoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rrpo_jax.models.cross_encoder import Dropout, apply_scores

FAMILIES = ("qwen3",)


@dataclasses.dataclass(frozen=True)
class Qwen3RerankerConfig:
  """Sizes and options of a Qwen3 decoder reranker (defaults: Qwen3-0.6B's sizes; from_pretrained
  reads the checkpoint's config.json and the tokenizer's "yes" / "no" ids)."""

  family: str = "qwen3"
  vocab_size: int = 151936  # V: rows of the embedding (and of lm_head)
  hidden_size: int = 1024  # H
  num_layers: int = 28  # decoder layers
  num_heads: int = 16  # query heads
  num_kv_heads: int = 8  # key/value heads (grouped-query attention: num_heads % num_kv_heads == 0)
  head_dim: int = 128  # d (Qwen3 sets it explicitly: num_heads * d need not equal H)
  intermediate_size: int = 3072  # SwiGLU width
  max_position_embeddings: int = 40960  # longest prompt the checkpoint was trained for
  rms_norm_eps: float = 1e-6  # epsilon of every RMSNorm
  rope_theta: float = 1_000_000.0  # RoPE base (default rope type only)
  attention_bias: bool = False  # biases on q/k/v/o projections
  tie_word_embeddings: bool = True  # the head's rows are the input embedding's rows
  hidden_act: str = "silu"  # SwiGLU gate activation (Qwen3: silu)
  yes_id: int = 9693  # token id of "yes" (Qwen3's tokenizer); s = z[yes] - z[no]
  no_id: int = 2152  # token id of "no"
  pad_token_id: int = 151643  # <|endoftext|>: written to config.json (the seq-cls export needs it)
  instruction: str | None = None  # prompt instruction (PromptEncoder); None -> the card's default
  hidden_dropout: float = 0.0  # dropout on both residual branches in training mode
  attention_dropout: float = 0.0  # dropout on attention probabilities in training mode
  initializer_range: float = 0.02  # std of the normal init of kernels and embeddings
  num_labels: int = 1  # one score per prompt (the reranker API checks it)
  dtype: str = "float32"  # compute dtype: "float32" | "bfloat16"
  param_dtype: str = "float32"  # parameter dtype (keep float32)
  remat: bool = False  # recompute each layer's activations in the backward pass
  row_block: int | None = None  # eval-mode rows per lax.map block (see cross_encoder.map_row_blocks)

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads {self.num_heads} not divisible by num_kv_heads {self.num_kv_heads}")
    if self.hidden_act not in ("silu", "swish"):
      raise ValueError(f"hidden_act {self.hidden_act!r} not supported (Qwen3 uses silu)")

  def replace(self, **changes: Any) -> "Qwen3RerankerConfig":
    return dataclasses.replace(self, **changes)


def _normal(config):
  return nn.initializers.normal(config.initializer_range)


class _Linear(nn.Module):
  """Declares a torch-Linear-like kernel [in, out] (and bias [out] if use_bias), unapplied."""

  features: int
  use_bias: bool
  config: Qwen3RerankerConfig

  @nn.compact
  def __call__(self, in_features: int):
    pdt = jnp.dtype(self.config.param_dtype)
    kernel = self.param("kernel", _normal(self.config), (in_features, self.features), pdt)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), pdt) if self.use_bias else None
    return kernel, bias


def _linear(x, kernel, bias, dt):
  y = jnp.dot(x.astype(dt), kernel.astype(dt))
  return y if bias is None else y + bias.astype(dt)


class _Table(nn.Module):
  """A [rows, H] table (embedding or untied lm_head), returned unapplied."""

  rows: int
  config: Qwen3RerankerConfig

  @nn.compact
  def __call__(self):
    cfg = self.config
    return self.param("embedding", _normal(cfg), (self.rows, cfg.hidden_size), jnp.dtype(cfg.param_dtype))


class RMSNorm(nn.Module):
  """y = scale * x / sqrt(mean(x^2) + eps) over the last axis; statistics in float32."""

  eps: float
  dtype: Any
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones_init(), (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return scale.astype(self.dtype) * y.astype(self.dtype)


def rope(x, cos, sin):
  """Rotary embedding, halves layout (HF's rotate_half): x [M, L, h, d], cos/sin [M, L, 1, d/2].

  [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin].
  """
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def rope_angles(positions, *, head_dim: int, theta: float):
  """cos, sin float32[M, L, 1, d/2] of angles pos * theta^(-2i/d), i < d/2."""
  inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
  ang = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
  return jnp.cos(ang)[:, :, None, :], jnp.sin(ang)[:, :, None, :]


class Attention(nn.Module):
  """Grouped-query causal self-attention with per-head RMSNorm on q and k, then RoPE.

  x [M, L, H], bias float32[M, L, L] (0 where query j may see key i, -1e9 elsewhere) -> [M, L, H].
  Query head g * rep + r uses key/value head g (rep = num_heads / num_kv_heads), as HF's repeat_kv.
  """

  config: Qwen3RerankerConfig
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias, cos, sin):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    m, length, hidden = x.shape
    nh, nkv, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    rep = nh // nkv
    parts = [
        _Linear(n * d, cfg.attention_bias, cfg, name=name)(hidden)
        for n, name in ((nh, "q_proj"), (nkv, "k_proj"), (nkv, "v_proj"))
    ]
    w = jnp.concatenate([k for k, _ in parts], axis=1)
    b = jnp.concatenate([b for _, b in parts]) if cfg.attention_bias else None
    qkv = _linear(x, w, b, dt)  # [M, L, (nh + 2 nkv) d]
    q = qkv[..., : nh * d].reshape(m, length, nh, d)
    k = qkv[..., nh * d : (nh + nkv) * d].reshape(m, length, nkv, d)
    v = qkv[..., (nh + nkv) * d :].reshape(m, length, nkv, d)
    norm = lambda name: RMSNorm(cfg.rms_norm_eps, dt, jnp.dtype(cfg.param_dtype), name=name)
    q = rope(norm("q_norm")(q), cos, sin) * jnp.asarray(d**-0.5, dt)
    k = rope(norm("k_norm")(k), cos, sin)
    q = q.reshape(m, length, nkv, rep, d).transpose(0, 2, 3, 1, 4).reshape(m, nkv, rep * length, d)
    k = k.transpose(0, 2, 3, 1)  # [M, kv, d, L]
    v = v.transpose(0, 2, 1, 3)  # [M, kv, L, d]
    logits = jnp.matmul(q, k, preferred_element_type=jnp.float32).reshape(m, nkv, rep, length, length)
    probs = jax.nn.softmax(logits + bias[:, None, None], axis=-1).astype(dt)
    probs = Dropout(cfg.attention_dropout, self.deterministic)(probs)
    ctx = jnp.matmul(probs.reshape(m, nkv, rep * length, length), v)  # [M, kv, rep L, d]
    ctx = ctx.reshape(m, nkv, rep, length, d).transpose(0, 3, 1, 2, 4).reshape(m, length, nh * d)
    ok, ob = _Linear(hidden, cfg.attention_bias, cfg, name="o_proj")(nh * d)
    return _linear(ctx, ok, ob, dt)


class DecoderLayer(nn.Module):
  """Pre-norm block: a = x + Attn(RMS(x)); y = a + W_down(silu(W_gate RMS(a)) * W_up RMS(a))."""

  config: Qwen3RerankerConfig
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, bias, cos, sin):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    norm = lambda name: RMSNorm(cfg.rms_norm_eps, dt, jnp.dtype(cfg.param_dtype), name=name)
    drop = Dropout(cfg.hidden_dropout, self.deterministic)
    x = x + drop(Attention(cfg, self.deterministic, name="self_attn")(norm("input_layernorm")(x), bias, cos, sin))
    h = norm("post_attention_layernorm")(x)
    mlp = _MLP(cfg, name="mlp")
    return x + drop(mlp(h))


class _MLP(nn.Module):
  """SwiGLU: W_down (silu(h W_gate) * (h W_up)), gate and up as one fused product."""

  config: Qwen3RerankerConfig

  @nn.compact
  def __call__(self, h):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    hidden, inter = cfg.hidden_size, cfg.intermediate_size
    gk, _ = _Linear(inter, False, cfg, name="gate_proj")(hidden)
    uk, _ = _Linear(inter, False, cfg, name="up_proj")(hidden)
    gu = _linear(h, jnp.concatenate([gk, uk], axis=1), None, dt)
    dk, _ = _Linear(hidden, False, cfg, name="down_proj")(inter)
    return _linear(jax.nn.silu(gu[..., :inter]) * gu[..., inter:], dk, None, dt)


class Qwen3Reranker(nn.Module):
  """Qwen3 decoder reranker: int32[..., N, L] prompts -> float32[..., N] scores z[yes] - z[no].

  `attention_mask` is 1 for real tokens, 0 for padding (left padding expected, any works);
  `token_type_ids` is accepted for the common signature and ignored. `deterministic=False` turns
  on dropout (when its rates are > 0) and needs a "dropout" rng.
  """

  config: Qwen3RerankerConfig

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, *, deterministic: bool = True):
    del token_type_ids
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    lead, length = input_ids.shape[:-1], input_ids.shape[-1]
    ids = input_ids.reshape(-1, length)
    mask = attention_mask.reshape(-1, length) > 0
    m = ids.shape[0]

    embed = _Table(cfg.vocab_size, cfg, name="embed_tokens")()
    x = jnp.take(embed, ids, axis=0).astype(dt)
    pos = jnp.maximum(jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1, 0)
    cos, sin = rope_angles(pos, head_dim=cfg.head_dim, theta=cfg.rope_theta)
    # -1e9 rather than -inf: a fully masked query row (left padding) stays finite (uniform).
    causal = jnp.tril(jnp.ones((length, length), bool))
    bias = jnp.where(causal[None] & mask[:, None, :], 0.0, -1e9).astype(jnp.float32)  # [M, L, L]

    layer_cls = nn.remat(DecoderLayer) if cfg.remat else DecoderLayer
    for i in range(cfg.num_layers):
      x = layer_cls(cfg, deterministic, name=f"layer_{i}")(x, bias, cos, sin)

    last = jnp.argmax(jnp.where(mask, jnp.arange(length), -1), axis=-1)  # rightmost real token
    h = x[jnp.arange(m), last].astype(jnp.float32)  # [M, H]
    h = RMSNorm(cfg.rms_norm_eps, jnp.float32, jnp.dtype(cfg.param_dtype), name="norm")(h)
    table = embed if cfg.tie_word_embeddings else _Table(cfg.vocab_size, cfg, name="lm_head")()
    w = table[cfg.yes_id].astype(jnp.float32) - table[cfg.no_id].astype(jnp.float32)  # [H]
    return jnp.dot(h, w).reshape(lead)


def init_params(config: Qwen3RerankerConfig, key, *, length: int = 8):
  """Fresh parameters: N(0, initializer_range) kernels and tables, unit norms, zero biases."""
  ids = jnp.zeros((1, length), jnp.int32)
  init = jax.jit(lambda k: Qwen3Reranker(config).init(k, ids, jnp.ones_like(ids), deterministic=True)["params"])
  return init(key)


def scores(
    config: Qwen3RerankerConfig, params, input_ids, attention_mask, token_type_ids=None, *, key=None
) -> jax.Array:
  """Scores float32[...] for prompts int32[..., L]: Qwen3Reranker(config).apply (cross_encoder.scores'
  contract: key=None is eval mode, run config.row_block rows at a time; a key is training mode)."""
  del token_type_ids
  return apply_scores(Qwen3Reranker(config), params, (input_ids, attention_mask), key=key, row_block=config.row_block)
