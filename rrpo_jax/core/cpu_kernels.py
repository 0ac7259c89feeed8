"""CPU: the kernel set measured faster on this project's 2-core XLA:CPU (opt-in; see core/kernels.py).

  bits              hand-written Threefry-2x32 in counter mode (not jax.random.bits' while loop)
  max_last          max through the order-preserving float -> int bitcast (an integer reduction)
  batched_matmul    a custom gradient for b that avoids XLA:CPU's batched transposed-operand product
  dropout           8-bit keep masks, four per random word (keep probability quantised to 1/256)
  softmax_dropout   a custom gradient from the output and the softmax alone

Random streams differ from the library's (same laws). On GPU / TPU the library path is what XLA
optimises, so select("auto") takes CPU only on the CPU backend. The trainer applies
config.kernels with kernels.use(select(config.kernels)) before any step is built.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from rrpo_jax.core import kernels
from rrpo_jax.errors import ConfigError
from rrpo_jax.registry import one_of

Array = jax.Array
CHOICES = ("auto", "cpu", "library")  # config.kernels

_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
  """The Threefry-2x32 block cipher, 20 rounds (Salmon et al., SC 2011): the cipher behind JAX's
  default PRNG, written out unrolled so XLA fuses it into one elementwise kernel. uint32 key words
  k0, k1 and counters x0, x1 (any equal shapes) -> the two cipher words."""
  ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
  x0, x1 = x0 + ks[0], x1 + ks[1]
  for i in range(5):
    for r in _THREEFRY_ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))) ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
  return x0, x1


def bits(key: Array, shape: tuple[int, ...]) -> Array:
  """uint32[shape] random bits: Threefry-2x32 in counter mode (counters 0, 1, ...) under the key.

  Same cipher and key as jax.random.bits for a threefry key (another key type is first turned into a
  threefry key with jax.random.bits), different counter layout, so a different but equally good
  stream. Why not jax.random.bits: on CPU it runs the 20 rounds as a while loop of small kernels.
  Measured on the 2-core CPU (loaded), jitted: 2560 words 24 us vs 16 us here, 256k words 0.59 vs 0.30 ms.
  """
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and str(jax.random.key_impl(key)) == "threefry2x32":
    kd = jax.random.key_data(key)
  elif jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    kd = jax.random.bits(key, (2,), jnp.uint32)
  else:  # a raw uint32[2] threefry key
    kd = jnp.asarray(key, jnp.uint32)
  # One cipher call per word (counter = flat index; the second cipher word is not used): a fused
  # kernel can only emit one word per element, and sharing a call between two elements through a
  # concatenation makes XLA run the cipher for each of them anyway.
  counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  return threefry2x32(kd[0], kd[1], counter, jnp.zeros_like(counter))[0]


def max_last(x: Array, keepdims: bool = False) -> Array:
  """max over the last axis through the order-preserving map float -> signed int of the same width.

  Same value as jnp.max (no NaNs here); an integer reduction is a plain XLA loop on CPU, several
  times cheaper than the library call XLA makes for a float reduction on these [rows, <= 64] arrays.
  """
  itype = jnp.int64 if x.dtype == jnp.float64 else jnp.int32
  mag = jnp.array(jnp.iinfo(itype).max, itype)
  b = jax.lax.bitcast_convert_type(x, itype)
  m = jnp.max(b ^ ((b >> (8 * x.dtype.itemsize - 1)) & mag), axis=-1, keepdims=keepdims)
  return jax.lax.bitcast_convert_type(m ^ ((m >> (8 * x.dtype.itemsize - 1)) & mag), x.dtype)


def batched_matmul(a: Array, b: Array, *, transpose_b: bool = False, preferred_element_type=None) -> Array:
  """a [..., I, J] @ b [..., J, E] -> [..., I, E] (transpose_b: b is [..., E, J] and a @ b^T).

  With a custom gradient for b. Autodiff writes it as a product that contracts the operands' first
  matrix axis, db = sum_i a[i, :]^T g[i, :], which XLA:CPU runs batched through a generic loop:
  31 GFLOP/s against 71 for the forward's product at [8, 12, 256, 256] x [8, 12, 256, 32] on 2
  cores. Here one small [..., L, d] operand is transposed into a real copy first
  (optimization_barrier keeps XLA from folding the transpose back into the product), so the
  product runs as the forward's does.
  """
  return _batched_matmul(a, b, transpose_b, preferred_element_type)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _batched_matmul(a, b, transpose_b, preferred_element_type):
  return jnp.matmul(a, b.swapaxes(-1, -2) if transpose_b else b, preferred_element_type=preferred_element_type)


def _batched_matmul_fwd(a, b, transpose_b, preferred_element_type):
  return _batched_matmul(a, b, transpose_b, preferred_element_type), (a, b)


def _batched_matmul_bwd(transpose_b, preferred_element_type, res, g):
  a, b = res
  g = g.astype(a.dtype)
  f32 = jnp.float32
  da = jnp.matmul(g, b if transpose_b else b.swapaxes(-1, -2), preferred_element_type=f32)
  # transpose_b: db[e, j] = sum_i g[i, e] a[i, j]; else db[j, e] = sum_i a[i, j] g[i, e].
  db = _first_axis_product(g, a) if transpose_b else _first_axis_product(a, g)
  return da.astype(a.dtype), db.astype(b.dtype)


def _first_axis_product(x, y):
  """sum_i x[..., i, p] y[..., i, q] -> float32[..., p, q], with the smaller operand transposed
  into a real copy so that XLA:CPU runs a plain [p, i] x [i, q] (or [q, i] x [i, p]) product."""
  t = lambda z: z.swapaxes(-1, -2)
  bar = jax.lax.optimization_barrier
  if x.shape[-1] <= y.shape[-1]:
    return jnp.matmul(bar(t(x)), y, preferred_element_type=jnp.float32)
  return t(bar(jnp.matmul(bar(t(y)), x, preferred_element_type=jnp.float32)))


_batched_matmul.defvjp(_batched_matmul_fwd, _batched_matmul_bwd)


def dropout(x: Array, rate: float, key) -> Array:
  """Inverted dropout with 8-bit random fields: y = x * keep * 256/t, keep ~ Bernoulli(t/256),
  t = round(256 (1 - rate)).

  One 32-bit random word serves four elements (byte i of word j masks element j of the i-th
  quarter of the last axis), so the PRNG (threefry on CPU, the costly part of dropout) runs 4x
  less than in jax.random.bernoulli. The keep probability is quantised to 1/256 (rate 0.1 keeps
  230/256 = 0.8984); the 256/t scaling keeps E[y] = x exactly.
  """
  if rate <= 0.0:
    return x
  t = min(max(round(256 * (1.0 - rate)), 1), 256)
  if t == 256:
    return x
  n = x.shape[-1]
  if n % 4:
    keep = jax.random.bits(key, x.shape, jnp.uint32) < np.uint32(t << 24)
  else:
    words = jax.random.bits(key, x.shape[:-1] + (1, n // 4), jnp.uint32)
    fields = (words >> jnp.array([[0], [8], [16], [24]], jnp.uint32)) & np.uint32(255)
    keep = (fields < np.uint32(t)).reshape(x.shape)
  return jnp.where(keep, x * jnp.asarray(256.0 / t, x.dtype), jnp.zeros((), x.dtype))


def softmax_dropout(logits: Array, rate: float, key, *, dtype) -> Array:
  """y = dropout(softmax(logits).astype(dtype), rate, key) over the last axis (this module's dropout).

  With a gradient written from y and p = softmax(logits) alone: y = p m (m the scaled keep mask), so
  dlogits = y dy - p sum_j(y dy). Autodiff's version re-applies the mask to dy and then runs the
  softmax backward, two more passes over the [M, h, L, L] arrays: the attention core's forward +
  backward ran 1.2x faster this way at 8 and 32 x 256 on 2 cores.
  """
  if rate <= 0.0:
    return dropout(jax.nn.softmax(logits, axis=-1).astype(dtype), rate, key)
  return _softmax_dropout(logits, key, rate, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _softmax_dropout(logits, key, rate, dtype):
  return _softmax_dropout_fwd(logits, key, rate, dtype)[0]


def _softmax_dropout_fwd(logits, key, rate, dtype):
  p = jax.nn.softmax(logits, axis=-1).astype(dtype)
  y = dropout(p, rate, key)
  return y, (p, y)


def _softmax_dropout_bwd(rate, dtype, res, dy):
  p, y = (x.astype(jnp.float32) for x in res)
  yd = y * dy.astype(jnp.float32)
  return yd - p * jnp.sum(yd, axis=-1, keepdims=True), None


_softmax_dropout.defvjp(_softmax_dropout_fwd, _softmax_dropout_bwd)

CPU = kernels.Kernels("cpu", bits, max_last, batched_matmul, dropout, softmax_dropout)


def select(choice: str) -> kernels.Kernels:
  """config.kernels -> the kernel set: "cpu" -> CPU, "library" -> kernels.LIBRARY, "auto" -> CPU on
  the CPU backend (jax.default_backend()), else LIBRARY. Apply it with kernels.use, once."""
  if choice not in CHOICES:
    raise ConfigError(f"config.kernels: must be {one_of(repr(c) for c in CHOICES)}, got {choice!r}")
  if choice == "cpu" or (choice == "auto" and jax.default_backend() == "cpu"):
    return CPU
  return kernels.LIBRARY
