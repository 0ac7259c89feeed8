"""Plackett-Luce ranking policy over the last (candidate) axis: sample, greedy, log_prob, entropy.

With scores s[N], temperature T and valid candidates V (the `where` mask), an ordered selection
a_1..a_k of distinct valid candidates has probability

  pi(a) = prod_t exp(s[a_t]/T) / sum_{j in V \ {a_1..a_{t-1}}} exp(s[j]/T)      (rrpo-method.md).

Conventions (docs/architecture.md): arrays positional, everything else keyword-only; any leading
batch axes; `where` is bool[..., N] (None = all valid); action slots that do not exist (fewer valid
candidates than k) are -1 and count as invalid everywhere downstream; fully masked rows give all -1
actions, zero log-probs, zero entropy and zero (finite) gradients. Math is done in float32 (or in
the input dtype if it is wider, e.g. float64 for finite-difference tests).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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


def sample(scores: Array, *, key: Array, k: int, temperature: float = 1.0, where: Array | None = None) -> Array:
  """Exact Plackett-Luce sample of k distinct candidates (Gumbel-top-k).

  a = top_k(s/T + g), g_i ~ Gumbel(0, 1) i.i.d.: the order of the perturbed scores is distributed
  as Plackett-Luce with weights exp(s/T). Masked candidates are never drawn; slots past the number
  of valid candidates are -1.

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
  g = jax.random.gumbel(key, s.shape, s.dtype)
  return _top_k_valid(s + g, where, k)


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
  in_candidates = jnp.take_along_axis(jnp.broadcast_to(where, actions.shape[:-1] + (n,)),
                                      jnp.clip(actions, 0, n - 1), axis=-1)
  return (actions >= 0) & (actions < n) & in_candidates & ~repeated


def log_prob(scores: Array, actions: Array, *, temperature: float = 1.0, where: Array | None = None) -> Array:
  """Per-step Plackett-Luce log-probabilities of an ordered selection.

  log pi_t = s[a_t]/T - logsumexp_{j in V, j not in {a_1..a_{t-1}}} s[j]/T.

  A slot is valid if 0 <= a_t < N, where[a_t] holds and a_t was not picked at an earlier slot;
  invalid slots (e.g. -1) give 0 and mark nothing as picked. The candidates still available at
  step t are the never-picked ones R plus the picks of slots u >= t, so with M_t the max over them
  (a constant for autodiff)

    log pi_t = (s[a_t] - M_t) - log( e^(m_R - M_t) sum_{j in R} e^(s_j - m_R) + sum_{u >= t} e^(s[a_u] - M_t) ),

  a sum without subtractions (no cancellation, exact for |s| ~ 1e4): O(N + k^2) exps and O(k*N)
  comparisons per row.

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
  picked = jnp.any((a[..., :, None] == jnp.arange(n)) & valid[..., :, None], axis=-2)  # [..., N]
  rest = where & ~picked
  m_rest, log_sum_rest = _masked_logsumexp(s, rest)  # [...]
  any_rest = jnp.any(rest, axis=-1)
  later = valid[..., None, :] & ~earlier  # [..., t, u]: valid slot u >= t
  m_later = jnp.max(jnp.where(later, s_a[..., None, :], -jnp.inf), axis=-1)  # [..., k]
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
