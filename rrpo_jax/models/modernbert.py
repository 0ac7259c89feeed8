"""Flax linen ModernBERT cross-encoder (gte-reranker-modernbert-base's family): int32[..., N, L] ->
float32[..., N], weight for weight transformers' ModernBertForSequenceClassification.

  h_0 = LN(E[ids])                                             (LayerNorms without bias by default)
  a   = h + W_o Attn(LN_attn(h))                               (layer 0: no LN_attn, identity)
  h'  = a + W_o' (act(u) * g),  [u, g] = LN_mlp(a) W_i          (GeGLU, act = exact GELU)
  s   = W_c drop(LN_head(act(W_d pool(LN_final(h_L))))) + b_c  (pool: [CLS] or masked mean)

Attention: fused Wqkv, rotary embeddings (halves layout) on q and k with the position's index;
"full_attention" layers (every global_attn_every_n_layers-th, from layer 0) see every real token
with RoPE base global_rope_theta, "sliding_attention" layers only tokens within
|i - j| <= local_attention / 2 with base local_rope_theta (masks as transformers 5's
create_bidirectional_sliding_window_mask). Two input layouts, the same parameters:
  padded  [..., N, L] per pair, right padding masked out of the attention (scores);
  packed  the pairs of each query in shared rows [..., R, L] (rrpo_jax.models.packing: segment ids, positions
          restarting per pair, each pair's first index) (packed_scores): attention only within a
          segment (and the window), pooling gathered per segment, so scores equal the padded ones.
Compute dtype is configurable (bf16 with float32 params); softmax, the head and the scores are
float32. Scores for fully padded rows / missing pairs are finite and meaningless (mask them with `where`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rrpo_jax.models.cross_encoder import _ACTIVATIONS, Dropout, apply_scores
from rrpo_jax.models.qwen3 import rope, rope_angles

FAMILIES = ("modernbert",)


@dataclasses.dataclass(frozen=True)
class ModernBertConfig:
  """Sizes and options of a ModernBERT cross-encoder (defaults: ModernBERT-base's sizes)."""

  family: str = "modernbert"
  vocab_size: int = 50368  # BPE vocabulary
  hidden_size: int = 768  # H
  num_layers: int = 22  # encoder layers
  num_heads: int = 12  # h; head size d = H / h
  intermediate_size: int = 1152  # GeGLU width (W_i is [H, 2 * this])
  max_position_embeddings: int = 8192  # longest sequence the checkpoint was trained for
  norm_eps: float = 1e-5  # LayerNorm epsilon
  norm_bias: bool = False  # LayerNorms have a bias
  attention_bias: bool = False  # Wqkv / Wo have biases
  mlp_bias: bool = False  # Wi / Wo have biases
  classifier_bias: bool = False  # the head's dense layer has a bias (the classifier always has one)
  layer_types: tuple[str, ...] | None = None  # "full_attention" | "sliding_attention" per layer
  global_attn_every_n_layers: int = 3  # the pattern when layer_types is None (layer i full iff i % n == 0)
  local_attention: int = 128  # sliding window: |i - j| <= local_attention // 2
  global_rope_theta: float = 160000.0  # RoPE base of full-attention layers
  local_rope_theta: float = 10000.0  # RoPE base of sliding-window layers
  hidden_activation: str = "gelu"  # GeGLU activation (key of cross_encoder._ACTIVATIONS)
  classifier_activation: str = "gelu"  # head activation
  classifier_pooling: str = "cls"  # "cls" | "mean"
  pad_token_id: int = 50283  # [PAD]
  hidden_dropout: float = 0.0  # embedding and GeGLU dropout in training mode
  attention_dropout: float = 0.0  # dropout on attention probabilities and output in training mode
  classifier_dropout: float = 0.0  # head dropout in training mode
  initializer_range: float = 0.02  # std of the normal init of kernels and embeddings
  num_labels: int = 1  # outputs of the classifier; scores use output 0
  dtype: str = "float32"  # compute dtype: "float32" | "bfloat16"
  param_dtype: str = "float32"  # parameter dtype (keep float32)
  remat: bool = False  # recompute each layer's activations in the backward pass
  row_block: int | None = None  # eval-mode rows per lax.map block (see cross_encoder.map_row_blocks)

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
    for act in (self.hidden_activation, self.classifier_activation):
      if act not in _ACTIVATIONS:
        raise ValueError(f"activation {act!r} not supported: {sorted(_ACTIVATIONS)}")
    if self.classifier_pooling not in ("cls", "mean"):
      raise ValueError(f"classifier_pooling must be cls or mean, got {self.classifier_pooling!r}")
    if self.layer_types is not None and (
        len(self.layer_types) != self.num_layers or not set(self.layer_types) <= {"full_attention", "sliding_attention"}
    ):
      raise ValueError(
          f"layer_types must name full_attention / sliding_attention for each of {self.num_layers} "
          f"layers, got {self.layer_types}"
      )

  def replace(self, **changes: Any) -> "ModernBertConfig":
    return dataclasses.replace(self, **changes)

  def kinds(self) -> tuple[str, ...]:
    """The attention kind of each layer."""
    if self.layer_types is not None:
      return tuple(self.layer_types)
    n = self.global_attn_every_n_layers
    return tuple("sliding_attention" if i % n else "full_attention" for i in range(self.num_layers))


def _normal(config):
  return nn.initializers.normal(config.initializer_range)


class _Linear(nn.Module):
  """x @ kernel [in, out] (+ bias) in the given dtype; names as nn.Dense."""

  features: int
  use_bias: bool
  config: ModernBertConfig
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    dt = self.dtype or jnp.dtype(cfg.dtype)
    pdt = jnp.dtype(cfg.param_dtype)
    kernel = self.param("kernel", _normal(cfg), (x.shape[-1], self.features), pdt)
    y = jnp.dot(x.astype(dt), kernel.astype(dt))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,), pdt).astype(dt)
    return y


def _norm(cfg, name, dtype=None):
  return nn.LayerNorm(
      epsilon=cfg.norm_eps,
      use_bias=cfg.norm_bias,
      dtype=dtype or jnp.dtype(cfg.dtype),
      param_dtype=jnp.dtype(cfg.param_dtype),
      name=name,
  )


class EncoderLayer(nn.Module):
  """a = x + Wo Attn(LN(x)) (no LN in layer 0); y = a + Wo' (gelu(u) * g), [u, g] = LN(a) Wi.

  x [M, L, H]; allowed bool[M, 1, L, L] (or [M, 1, 1, L]): query i may attend to key j; cos, sin: RoPE.
  """

  config: ModernBertConfig
  first: bool = False
  deterministic: bool = True

  @nn.compact
  def __call__(self, x, allowed, cos, sin):
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    m, length, hidden = x.shape
    heads, d = cfg.num_heads, hidden // cfg.num_heads
    h = x if self.first else _norm(cfg, "attn_norm")(x)
    qkv = _Linear(3 * hidden, cfg.attention_bias, cfg, name="Wqkv")(h).reshape(m, length, 3, heads, d)
    q = rope(qkv[:, :, 0], cos, sin) * jnp.asarray(d**-0.5, dt)
    k = rope(qkv[:, :, 1], cos, sin)
    q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, qkv[:, :, 2]))  # [M, h, L, d]
    logits = jnp.matmul(q, k.swapaxes(-1, -2), preferred_element_type=jnp.float32)  # [M, h, L, L]
    # -1e9 rather than -inf: a fully padded row stays finite (uniform attention). A boolean mask (not
    # an additive float bias) keeps the packed layout's [M, 1, L, L] mask at a quarter of the bytes.
    logits = jnp.where(allowed, logits, -1e9)
    probs = Dropout(cfg.attention_dropout, self.deterministic)(jax.nn.softmax(logits, axis=-1).astype(dt))
    ctx = jnp.matmul(probs, v).transpose(0, 2, 1, 3).reshape(m, length, hidden)
    attn = _Linear(hidden, cfg.attention_bias, cfg, name="Wo")(ctx)
    x = x + Dropout(cfg.attention_dropout, self.deterministic)(attn)
    inter = cfg.intermediate_size
    ug = _Linear(2 * inter, cfg.mlp_bias, cfg, name="Wi")(_norm(cfg, "mlp_norm")(x))
    act = _ACTIVATIONS[cfg.hidden_activation](ug[..., :inter]) * ug[..., inter:]
    act = Dropout(cfg.hidden_dropout, self.deterministic)(act)
    return x + _Linear(hidden, cfg.mlp_bias, cfg, name="mlp_Wo")(act)


class ModernBertCrossEncoder(nn.Module):
  """ModernBERT cross-encoder: int32[..., N, L] -> float32[..., N] (output 0 of the classifier).

  Padded layout: `attention_mask` is 1 for real tokens (right padding, as the tokenizer gives).
  Packed layout (pair_start given): input_ids [..., R, L] packed rows, attention_mask the segment
  ids [..., R, L] (j + 1 on pair j, 0 on padding), positions [..., R, L], pair_start [..., N]
  (rrpo_jax.models.packing). Token types are ignored. `deterministic=False` turns on dropout (when its
  rates are > 0) and needs a "dropout" rng.
  """

  config: ModernBertConfig

  @nn.compact
  def __call__(
      self,
      input_ids,
      attention_mask,
      token_type_ids=None,
      *,
      positions=None,
      pair_start=None,
      deterministic: bool = True,
  ):
    del token_type_ids
    cfg = self.config
    dt = jnp.dtype(cfg.dtype)
    f32 = jnp.float32
    packed = pair_start is not None
    lead, length = input_ids.shape[:-1], input_ids.shape[-1]
    ids = input_ids.reshape(-1, length)
    seg = attention_mask.reshape(-1, length)
    m = ids.shape[0]
    table = self.param("tok_embeddings", _normal(cfg), (cfg.vocab_size, cfg.hidden_size), jnp.dtype(cfg.param_dtype))
    x = _norm(cfg, "embeddings_norm", f32)(jnp.take(table, ids, axis=0).astype(f32))
    x = Dropout(cfg.hidden_dropout, deterministic)(x).astype(dt)

    if packed:
      pos = positions.reshape(-1, length).astype(jnp.int32)
      # [M, 1, L, L]: a token sees its own segment (padding sees padding), locally within the window.
      same = (seg[:, :, None] == seg[:, None, :])[:, None]
      near = (jnp.abs(pos[:, :, None] - pos[:, None, :]) <= cfg.local_attention // 2)[:, None]
    else:
      pos = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (m, length))
      same = (seg > 0)[:, None, None, :]  # [M, 1, 1, L]: every query token sees the real keys
      near = (jnp.abs(jnp.arange(length)[:, None] - jnp.arange(length)[None, :]) <= cfg.local_attention // 2)[
          None, None
      ]
    head_dim = cfg.hidden_size // cfg.num_heads
    angles = {
        "full_attention": rope_angles(pos, head_dim=head_dim, theta=cfg.global_rope_theta),
        "sliding_attention": rope_angles(pos, head_dim=head_dim, theta=cfg.local_rope_theta),
    }
    masks = {"full_attention": same, "sliding_attention": same & near}
    layer_cls = nn.remat(EncoderLayer) if cfg.remat else EncoderLayer
    for i, kind in enumerate(cfg.kinds()):
      x = layer_cls(cfg, i == 0, deterministic, name=f"layer_{i}")(x, masks[kind], *angles[kind])
    x = _norm(cfg, "final_norm", f32)(x.astype(f32))

    if packed:
      out_shape = pair_start.shape
      pooled = _pool_segments(x, seg, pair_start.reshape(-1, out_shape[-1]), rows=lead[-1], kind=cfg.classifier_pooling)
    elif cfg.classifier_pooling == "cls":
      out_shape, pooled = lead, x[:, 0]
    else:
      w = (seg > 0).astype(f32)[..., None]
      out_shape, pooled = lead, jnp.sum(x * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)
    h = _ACTIVATIONS[cfg.classifier_activation](
        _Linear(cfg.hidden_size, cfg.classifier_bias, cfg, f32, name="head_dense")(pooled)
    )
    h = Dropout(cfg.classifier_dropout, deterministic)(_norm(cfg, "head_norm", f32)(h))
    logits = _Linear(cfg.num_labels, True, cfg, f32, name="classifier")(h)
    return logits[..., 0].reshape(out_shape)


def _pool_segments(x, seg, pair_start, *, rows: int, kind: str):
  """Per-pair vectors [Q, N, H] of packed hidden states x [Q * rows, L, H]: the pair's first token
  x[q, pair_start[q, j]] ("cls") or the mean over its segment seg == j + 1 ("mean")."""
  q, n = pair_start.shape
  x = x.reshape(q, -1, x.shape[-1])  # [Q, R * L, H]
  if kind == "cls":
    return jnp.take_along_axis(x, pair_start[..., None].astype(jnp.int32), axis=1)
  seg = seg.reshape(q, -1)
  total = jax.vmap(lambda v, s: jax.ops.segment_sum(v, s, num_segments=n + 1))(x, seg)[:, 1:]
  count = jax.vmap(lambda s: jnp.bincount(s, length=n + 1))(seg)[:, 1:, None]
  return total / jnp.maximum(count, 1).astype(x.dtype)


def init_params(config: ModernBertConfig, key, *, length: int = 8):
  """Fresh parameters: N(0, initializer_range) kernels and embedding, unit norms, zero biases."""
  ids = jnp.zeros((1, length), jnp.int32)
  init = jax.jit(
      lambda k: ModernBertCrossEncoder(config).init(k, ids, jnp.ones_like(ids), deterministic=True)["params"]
  )
  return init(key)


def scores(config: ModernBertConfig, params, input_ids, attention_mask, token_type_ids=None, *, key=None) -> jax.Array:
  """Scores float32[...] for inputs int32[..., L] (cross_encoder.scores' contract: key=None is eval mode,
  run config.row_block rows at a time; a key is training mode with dropout)."""
  del token_type_ids
  return apply_scores(
      ModernBertCrossEncoder(config), params, (input_ids, attention_mask), key=key, row_block=config.row_block
  )


def packed_scores(
    config: ModernBertConfig, params, packed_ids, segment_ids, positions, pair_start, *, key=None
) -> jax.Array:
  """Scores float32[..., N] of packed rows int32[..., R, L] (rrpo_jax.models.packing), equal to scores() of
  the same pairs padded. key=None is eval mode (config.row_block > 0, or None on CPU: one query's
  rows at a time); a key is training mode with dropout."""
  module = ModernBertCrossEncoder(config)

  def apply(ids, seg, pos, start, **kw):
    return module.apply({"params": params}, ids, seg, positions=pos, pair_start=start, **kw)

  if key is not None:
    return apply(packed_ids, segment_ids, positions, pair_start, deterministic=False, rngs={"dropout": key})
  block = config.row_block if config.row_block is not None else (1 if jax.default_backend() == "cpu" else 0)
  lead = pair_start.shape[:-1]
  q = int(np.prod(lead, dtype=np.int64))
  if block <= 0 or q <= 1:
    return apply(packed_ids, segment_ids, positions, pair_start)
  arrays = [a.reshape((q,) + a.shape[len(lead) :]) for a in (packed_ids, segment_ids, positions, pair_start)]
  out = jax.lax.map(lambda a: apply(*a), tuple(arrays))
  return out.reshape(pair_start.shape)
