r"""Plackett-Luce ranking policy over the last (candidate) axis: sample, greedy, log_prob, entropy.

With scores s[N], temperature T and valid candidates V (the `where` mask), an ordered selection
a_1..a_k of distinct valid candidates has probability

  pi(a) = prod_t exp(s[a_t]/T) / sum_{j in V \ {a_1..a_{t-1}}} exp(s[j]/T)      (rrpo-method.md).

Conventions (docs/architecture.md): arrays positional, everything else keyword-only; any leading
batch axes; `where` is bool[..., N] (None = all valid); action slots that do not exist (fewer valid
candidates than k) are -1 and count as invalid everywhere downstream; fully masked rows give all -1
actions, zero log-probs, zero entropy and zero (finite) gradients. Math is done in float32 (or in
the input dtype if it is wider, e.g. float64 for finite-difference tests). Random bits and the
small maxes come from the active kernel set (core/kernels.py: the library's, or cpu_kernels.CPU).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rrpo_jax.core import kernels

Array = jax.Array


def _prepare(scores: Array, temperature, where: Array | None) -> tuple[Array, Array]:
  """(s / T in float32 with masked entries zeroed, bool mask), both [..., N]."""
  dtype = jnp.promote_types(scores.dtype, jnp.float32)
  if where is None:
    where = jnp.ones(scores.shape, bool)
  where = jnp.broadcast_to(where, scores.shape)
  # Zeroing masked scores keeps inf/NaN padding out of every later op, gradients included.
  s = jnp.where(where, scores.astype(dtype), 0.0) / jnp.asarray(temperature, dtype)
  return s, where


def _top_k_valid(z: Array, where: Array, k: int) -> Array:
  """Indices of the k largest z among valid entries (ties: lower index), -1 past the valid count."""
  n = z.shape[-1]
  finfo = jnp.finfo(z.dtype)
  # Valid entries are clipped to finite values so they always rank above masked ones (-inf).
  z = jnp.where(where, jnp.clip(z, finfo.min, finfo.max), -jnp.inf)
  if k > n:
    z = jnp.concatenate([z, jnp.full(z.shape[:-1] + (k - n,), -jnp.inf, z.dtype)], axis=-1)
  _, idx = jax.lax.top_k(z, k)
  n_valid = jnp.sum(where, axis=-1, keepdims=True)
  return jnp.where(jnp.arange(k) < n_valid, idx, -1).astype(jnp.int32)


# sample() uses the sequential two-level inverse-CDF sampler when k <= _SEQUENTIAL_MAX_K and
# k <= N / 4, and Gumbel-top-k otherwise (long rankings: the sequential sampler is unrolled over the k
# picks). Measured on the 2-core CPU, sample alone, best of n: the sequential sampler needs 2 uniforms
# per pick and one exp pass over N but ~10 small kernels per pick; Gumbel-top-k needs N cipher calls
# and two logs per row plus a sort-based top_k. Sequential vs Gumbel: [64, 64, k=5] 32 vs 37 us,
# [64, 100, 5] 48 vs 51 us, [64, 300, 5] 64 vs 112 us, [256, 1000, 10] 0.65 vs 1.6 ms.
_SEQUENTIAL_MAX_K = 32


def sample(scores: Array, *, key: Array, k: int, temperature: float = 1.0, where: Array | None = None) -> Array:
  """Exact Plackett-Luce sample of k distinct candidates.

  Masked candidates are never drawn; slots past the number of valid candidates are -1. Two exact
  algorithms, chosen by shape (both give the Plackett-Luce law, to float32 rounding):
    * sequential inverse CDF (k <= min(_SEQUENTIAL_MAX_K, N/4)): k times draw from softmax over the
      remaining candidates and remove the pick, with a two-level (block, then within block) search;
      see _sample_sequential.
    * Gumbel-top-k (otherwise): a = top_k(s/T + g), g_i ~ Gumbel(0, 1) i.i.d.; the order of the
      perturbed scores is Plackett-Luce with weights exp(s/T).
  The two use the key differently, so the same key gives different (equally distributed) draws.

  Args:
    scores: float[..., N].
    key: a typed PRNG key (one for the whole array).
    k: selections per row (may exceed N; the extra slots are -1).
    temperature: T > 0.
    where: bool[..., N] valid candidates.
  Returns:
    int32[..., k] candidate indices in pick order.
  """
  s, where = _prepare(scores, temperature, where)
  n = s.shape[-1]
  if 0 < k <= min(_SEQUENTIAL_MAX_K, n // 4):
    return _sample_sequential(s, where, key=key, k=k)
  if s.dtype == jnp.float32:
    # u on the grid (i + 1/2) 2^-23, i < 2^23: in (0, 1), exact in float32, so g is finite.
    u = ((kernels.active().bits(key, s.shape) >> 9).astype(jnp.float32) + 0.5) * (2.0**-23)
    g = -jnp.log(-jnp.log(u))
  else:
    g = jax.random.gumbel(key, s.shape, s.dtype)
  return _top_k_valid(s + g, where, k)


def _block_size(n: int) -> int:
  """Block length for the two-level search: a divisor of n near sqrt(n) if there is one (no padding)."""
  r = max(1, math.isqrt(n))
  for d in range(r, max(1, r // 2) - 1, -1):
    if n % d == 0:
      return d
  return r + 1 if r * r < n else r


def _uniform24(bits: Array) -> Array:
  """float32 uniforms on the grid {0, 2^-24, ..., 1 - 2^-24} from uint32 bits (exact conversion)."""
  return (bits >> 8).astype(jnp.float32) * (2.0**-24)


def _inverse_cdf(w: Array, u: Array) -> Array:
  """Index of the first w-cumulative sum above u * total along the last axis (w >= 0, u in [0, 1)).

  The cumulative sums are one matmul with an upper-triangular 0/1 matrix: every column accumulates
  the same terms in the same order with zeros for the others, so they are nondecreasing, equal where
  w = 0, and the returned index always has w > 0 when the total is positive. The target is clamped
  below the total so rounding of u * total cannot run past the end.
  """
  m = w.shape[-1]
  ones = (jnp.arange(m)[:, None] <= jnp.arange(m)[None, :]).astype(w.dtype)
  cum = jnp.dot(w, ones, precision=jax.lax.Precision.HIGHEST)
  total = cum[..., -1:]
  target = jnp.minimum(u[..., None] * total, jnp.nextafter(total, jnp.zeros_like(total)))
  return jnp.minimum(jnp.sum(cum <= target, axis=-1, dtype=jnp.int32), m - 1)


def _small_max(x: Array, keepdims: bool = False) -> Array:
  """max over the last axis: the kernels' max_last up to 2^16 elements, jnp.max above (where XLA's
  float reduction beats cpu_kernels.max_last; measured on the 2-core CPU)."""
  return kernels.active().max_last(x, keepdims) if x.size <= 2**16 else jnp.max(x, axis=-1, keepdims=keepdims)


def _sample_sequential(s: Array, where: Array, *, key: Array, k: int, block: int | None = None) -> Array:
  """Plackett-Luce by its definition: k times, pick j with probability exp(s_j) / sum_remaining exp(s).

  s (already divided by T, masked entries zeroed) and where are [..., N]. The N candidates are cut
  into blocks of length `block`; each block keeps (M_b, S_b) = (max of its remaining s, sum of
  exp(s - M_b) over its remaining candidates). A pick draws a block with probability
  exp(M_b - M) S_b / sum_b' exp(M_b' - M) S_b' (M the largest M_b), then a candidate inside it with
  probability exp(s_j - M_b) / S_b, each by inverse CDF with its own uniform: exactly
  exp(s_j) / sum_remaining exp(s). The picked block's (M_b, S_b) is then recomputed from scratch (no
  subtraction, so no cancellation; the max shifts keep every remaining candidate's weight in float32
  range, whatever the score spread). Work per row: one exp pass over N, then O(k * (N/block + block)).
  Uses 2k uniforms per row (24-bit), instead of N Gumbels.
  """
  lead, n = s.shape[:-1], s.shape[-1]
  s = s.reshape(-1, n)
  valid = where.reshape(-1, n)
  rows = s.shape[0]
  bs = block or _block_size(n)
  nb = -(-n // bs)
  if nb * bs != n:
    s = jnp.pad(s, ((0, 0), (0, nb * bs - n)))
    valid = jnp.pad(valid, ((0, 0), (0, nb * bs - n)))
  s = s.reshape(rows, nb, bs)
  valid = valid.reshape(rows, nb, bs)
  neg = jnp.array(-jnp.inf, s.dtype)
  finite_or_zero = lambda x: jnp.where(jnp.isfinite(x), x, 0.0)
  m_blk = _small_max(jnp.where(valid, s, neg))  # [rows, nb]; -inf: nothing left in the block
  s_blk = jnp.sum(jnp.where(valid, jnp.exp(s - finite_or_zero(m_blk)[..., None]), 0.0), axis=-1)
  u = _uniform24(kernels.active().bits(key, (2, k, rows))).astype(s.dtype)
  row_idx = jnp.arange(rows)
  lane = jnp.arange(bs)
  blocks = jnp.arange(nb)
  picks: list[jax.Array] = []
  for t in range(k):
    m_top = kernels.active().max_last(m_blk, keepdims=True)
    any_left = jnp.isfinite(m_top[:, 0])
    w_blk = jnp.where(jnp.isfinite(m_blk), jnp.exp(m_blk - finite_or_zero(m_top)) * s_blk, 0.0)
    b = _inverse_cdf(w_blk, u[0, t]) if nb > 1 else jnp.zeros((rows,), jnp.int32)
    s_in = s[row_idx, b]  # [rows, bs]
    left = valid[row_idx, b]
    for p in picks:
      left = left & (b[:, None] * bs + lane != p[:, None])
    w_in = jnp.where(left, jnp.exp(s_in - finite_or_zero(m_blk[row_idx, b])[:, None]), 0.0)
    j = _inverse_cdf(w_in, u[1, t])
    picks.append(jnp.where(any_left, b * bs + j, -1))
    if t + 1 < k:  # recompute the picked block without its pick
      left = left & (lane != j[:, None])
      m_new = kernels.active().max_last(jnp.where(left, s_in, neg), keepdims=True)
      s_new = jnp.sum(jnp.where(left, jnp.exp(s_in - finite_or_zero(m_new)), 0.0), axis=-1, keepdims=True)
      hit = blocks == b[:, None]
      m_blk = jnp.where(hit, m_new, m_blk)
      s_blk = jnp.where(hit, s_new, s_blk)
  return jnp.stack(picks, axis=-1).astype(jnp.int32).reshape(lead + (k,))


def greedy(scores: Array, *, k: int, where: Array | None = None) -> Array:
  """Top-k valid candidates by score, ties broken by lower index; int32[..., k], -1 past the valid count."""
  s, where = _prepare(scores, 1.0, where)
  return _top_k_valid(s, where, k)


def _masked_logsumexp(x: Array, mask: Array, axis: int = -1) -> tuple[Array, Array]:
  """(m, log sum_mask exp(x - m)) with m the masked max (constant for autodiff); logsumexp = m + second.

  Kept apart so callers can form (x_i - m) - log_sum, exact to float32 rounding of small numbers
  even when |x| ~ 1e4. Empty masks give (0, 0) with zero gradient and no NaN.
  """
  any_ = jnp.any(mask, axis=axis, keepdims=True)
  m = jnp.max(jnp.where(mask, x, -jnp.inf), axis=axis, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(any_, m, 0.0))
  # exp(-inf) = 0 with zero derivative, so masked entries neither count nor leak gradient.
  total = jnp.sum(jnp.exp(jnp.where(mask, x - m, -jnp.inf)), axis=axis, keepdims=True)
  log_sum = jnp.where(any_, jnp.log(jnp.where(any_, total, 1.0)), 0.0)
  return jnp.squeeze(m, axis), jnp.squeeze(log_sum, axis)


def valid_actions(actions: Array, *, where: Array) -> Array:
  """bool[..., k]: slot t holds a real pick, i.e. 0 <= a_t < N, where[a_t], and a_t not picked earlier.

  `where` is bool[..., N]. These are exactly the slots that log_prob scores (the others give 0).
  """
  n, k = where.shape[-1], actions.shape[-1]
  actions = jnp.asarray(actions, jnp.int32)
  earlier = jnp.arange(k)[None, :] < jnp.arange(k)[:, None]  # [t, u]: u < t
  repeated = jnp.any((actions[..., :, None] == actions[..., None, :]) & earlier, axis=-1)
  in_candidates = jnp.take_along_axis(
      jnp.broadcast_to(where, actions.shape[:-1] + (n,)), jnp.clip(actions, 0, n - 1), axis=-1
  )
  return (actions >= 0) & (actions < n) & in_candidates & ~repeated


def _remove_picks(where: Array, actions: Array, valid: Array) -> Array:
  """where with the candidates picked by valid slots set to False (a scatter: O(k) per row, not O(k*N))."""
  shape = where.shape
  n, k = shape[-1], actions.shape[-1]
  rows = math.prod(shape[:-1])
  idx = jnp.where(valid, actions, n)  # invalid slots point past the end and are dropped
  idx = jnp.broadcast_to(idx, shape[:-1] + (k,)).reshape(rows, k)
  rest = where.reshape(rows, n).at[jnp.arange(rows)[:, None], idx].set(False, mode="drop")
  return rest.reshape(shape)


def log_prob(scores: Array, actions: Array, *, temperature: float = 1.0, where: Array | None = None) -> Array:
  """Per-step Plackett-Luce log-probabilities of an ordered selection.

  log pi_t = s[a_t]/T - logsumexp_{j in V, j not in {a_1..a_{t-1}}} s[j]/T.

  A slot is valid if 0 <= a_t < N, where[a_t] holds and a_t was not picked at an earlier slot;
  invalid slots (e.g. -1) give 0 and mark nothing as picked. The candidates still available at
  step t are the never-picked ones R plus the picks of slots u >= t, so with M_t the max over them
  (a constant for autodiff)

    log pi_t = (s[a_t] - M_t) - log( e^(m_R - M_t) sum_{j in R} e^(s_j - m_R) + sum_{u >= t} e^(s[a_u] - M_t) ),

  a sum without subtractions (no cancellation, exact for |s| ~ 1e4): O(N + k^2) exps per row; the
  picked set is a scatter of the k picks (O(k)), not a [k, N] comparison.

  Args:
    scores: float[..., N] (any float dtype; computed in float32 or wider).
    actions: int[..., k].
    temperature: T > 0.
    where: bool[..., N].
  Returns:
    float[..., k] (float32 unless the scores are float64), differentiable in scores.
  """
  s, where = _prepare(scores, temperature, where)
  n, k = s.shape[-1], actions.shape[-1]
  actions = jnp.asarray(actions, jnp.int32)
  a = jnp.clip(actions, 0, n - 1)
  earlier = jnp.arange(k)[None, :] < jnp.arange(k)[:, None]  # [t, u]: u < t
  valid = valid_actions(actions, where=where)
  s_a = jnp.take_along_axis(s, a, axis=-1)  # [..., k]
  rest = _remove_picks(where, a, valid)  # [..., N]: valid and never picked
  # logsumexp over rest as (m_rest, log_sum_rest), as in _masked_logsumexp; "rest is empty" is read off
  # the max (-inf) instead of a separate pass over N (scores are finite).
  m_rest = _small_max(jnp.where(rest, s, -jnp.inf))
  any_rest = jnp.isfinite(m_rest)
  m_rest = jax.lax.stop_gradient(jnp.where(any_rest, m_rest, 0.0))
  sum_rest = jnp.sum(jnp.exp(jnp.where(rest, s - m_rest[..., None], -jnp.inf)), axis=-1)
  log_sum_rest = jnp.where(any_rest, jnp.log(jnp.where(any_rest, sum_rest, 1.0)), 0.0)
  later = valid[..., None, :] & ~earlier  # [..., t, u]: valid slot u >= t
  m_later = _small_max(jnp.where(later, s_a[..., None, :], -jnp.inf))  # [..., k]
  big = jnp.maximum(jnp.where(any_rest, m_rest, -jnp.inf)[..., None], m_later)
  big = jax.lax.stop_gradient(jnp.where(jnp.isfinite(big), big, 0.0))
  rest_part = jnp.exp(log_sum_rest[..., None] + jnp.where(any_rest[..., None], m_rest[..., None] - big, -jnp.inf))
  later_part = jnp.sum(jnp.exp(jnp.where(later, s_a[..., None, :] - big[..., None], -jnp.inf)), axis=-1)
  total = jnp.where(valid, rest_part + later_part, 1.0)  # >= 1 term equal to 1 on valid slots
  return jnp.where(valid, (s_a - big) - jnp.log(total), 0.0)


def entropy(scores: Array, *, temperature: float = 1.0, where: Array | None = None) -> Array:
  """Entropy of the first-pick distribution p = softmax(s/T) over valid candidates.

  H = -sum_i p_i log p_i = logsumexp(s/T) - sum_i p_i s_i/T; float[...], 0 for fully masked rows.
  """
  s, where = _prepare(scores, temperature, where)
  m, log_sum = _masked_logsumexp(s, where)
  log_p = jnp.where(where, (s - m[..., None]) - log_sum[..., None], 0.0)
  p = jnp.where(where, jnp.exp(log_p), 0.0)
  return -jnp.sum(p * log_p, axis=-1)
