"""The RRPO objective: advantages, sliding-window standardisation, clipped ratio vs the reference + KL.

Per query with k steps (rrpo-method.md, "Advantage and objective"):
  advantages    A_t from rewards r_t and reference-greedy values V_t (GAE or reference-difference);
  standardise   A^_t = (A_t - mean_W) / (std_W + 1e-8) over a FIFO window W of recent A's, 0 while
                std_W < 1e-8;
  loss          -[ sum_t min(rho_t A^_t, clip(rho_t, 1-eps, 1+eps) A^_t) - beta KL_t ] / n,
                rho_t = exp(log pi_t - log pi_ref,t), n = number of valid steps.
All functions are pure and jit-able; the last axis is the step axis k; `where` bool[..., k] marks
valid steps (invalid steps contribute nothing).
"""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp

from rrpo_jax.registry import Registry

Array = jax.Array

# The pluggable parts, by name (config: rrpo.advantage, rrpo.standardize, rrpo.kl_estimator,
# rrpo.loss). A new one is a registered function below plus a test; validation reads names().
# advantage(r, v, *, gamma, lam) -> A, with r and v already 0 on invalid steps.
ADVANTAGES: Registry[Callable[..., Array]] = Registry("advantage kind")
# The advantage kinds that read the group of samples of a question: r is [..., G, k] (G samples,
# rrpo.samples) and v [..., G, k] (the reference's, the same for every sample); the update step
# gives them a group axis of 1 when a question has a single sample.
GROUPED: set[str] = set()
# standardise(window, adv, *, eps) -> A^ (see window_standardise).
STANDARDIZERS: Registry[Callable[..., Array]] = Registry("standardize kind")
# kl(x) -> per-sample KL(pi || pi_ref) estimate from the capped log-ratio x = log pi - log pi_ref.
KL_ESTIMATORS: Registry[Callable[[Array], Array]] = Registry("kl kind")
# surrogate(ratio, adv, log_prob, *, eps) -> (surr_t, clipped_t bool) per step (see loss).
LOSSES: Registry[Callable[..., tuple[Array, Array]]] = Registry("estimator")
# Log-ratios are capped at +-LOG_RATIO_CAP before exp so that rho stays finite (rho <= 4.9e8).
LOG_RATIO_CAP = 20.0


def _discounted_suffix_sum(x: Array, discount) -> Array:
  """y_t = sum_{j >= t} discount^(j - t) x_j over the last axis (k is small: a k x k matmul)."""
  k = x.shape[-1]
  t = jnp.arange(k)
  power = (t[None, :] - t[:, None]).astype(x.dtype)  # [t, j] = j - t
  weights = jnp.where(power >= 0, jnp.power(jnp.asarray(discount, x.dtype), jnp.maximum(power, 0)), 0.0)
  return jnp.einsum("...j,tj->...t", x, weights)


def advantages(
    rewards: Array,
    values: Array,
    *,
    kind: str = "gae",
    gamma: float = 1.0,
    lam: float = 1.0,
    where: Array | None = None,
) -> Array:
  """Per-step advantages, float32[..., k].

  kind="gae":             delta_t = r_t + gamma V_{t+1} - V_t (V_{k+1} = 0),
                          A_t = sum_{j >= t} (gamma lam)^(j-t) delta_j   (the paper's literal form);
  kind="ref_diff_return": A_t = sum_{j >= t} gamma^(j-t) (r_j - V_j);
  kind="ref_diff":        A_t = r_t - V_t;
  kind="group_loo":       r, V [..., G, k] (G samples of a question, GROUPED): the return to go R^g_t
                          of sample g against the leave-one-out mean of the group with the
                          reference as one more member, A^g_t = R^g_t - (sum_{h != g} R^h_t + V_t) / G
                          (R_t = sum_{j >= t} gamma^(j-t) r_j, V_t the reference's; Kool et al. 2019,
                          RLOO); with G = 1 it is ref_diff_return.
  Invalid steps (where=False; they form a suffix, e.g. -1 action slots) are treated as past the end
  of the episode: their r and V are 0, so the last valid step bootstraps from V = 0, and their A is 0.
  """
  estimate = ADVANTAGES.get(kind)
  r = jnp.asarray(rewards, jnp.float32)
  v = jnp.asarray(values, jnp.float32)
  if where is not None:
    r, v = jnp.where(where, r, 0.0), jnp.where(where, v, 0.0)
  adv = estimate(r, v, gamma=gamma, lam=lam)
  return adv if where is None else jnp.where(where, adv, 0.0)


@ADVANTAGES.register("gae")
def _gae(r: Array, v: Array, *, gamma: float, lam: float) -> Array:
  v_next = jnp.concatenate([v[..., 1:], jnp.zeros_like(v[..., :1])], axis=-1)
  return _discounted_suffix_sum(r + gamma * v_next - v, gamma * lam)


@ADVANTAGES.register("ref_diff_return")
def _ref_diff_return(r: Array, v: Array, *, gamma: float, lam: float) -> Array:
  del lam
  return _discounted_suffix_sum(r - v, gamma)


@ADVANTAGES.register("ref_diff")
def _ref_diff(r: Array, v: Array, *, gamma: float, lam: float) -> Array:
  del gamma, lam
  return r - v


@ADVANTAGES.register("group_loo")
def _group_loo(r: Array, v: Array, *, gamma: float, lam: float) -> Array:
  del lam
  ret, ref = _discounted_suffix_sum(r, gamma), _discounted_suffix_sum(v, gamma)
  others = jnp.sum(ret, axis=-2, keepdims=True) - ret
  return ret - (others + ref) / r.shape[-2]


GROUPED.add("group_loo")


@flax.struct.dataclass
class Window:
  """FIFO buffer of the most recent `capacity` per-step advantages (training state; checkpointed).

  buffer float32[capacity]; count int32 (filled entries, <= capacity); pointer int32 (next write).
  """

  buffer: Array
  count: Array
  pointer: Array

  @property
  def capacity(self) -> int:
    return self.buffer.shape[-1]


def window_init(capacity: int) -> Window:
  """An empty window with room for `capacity` values."""
  if capacity < 1:
    raise ValueError(f"window capacity must be >= 1, got {capacity}")
  return Window(jnp.zeros((capacity,), jnp.float32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def window_push(window: Window, values: Array, *, where: Array | None = None) -> Window:
  """Append the valid entries of `values` (any shape, row-major order), oldest overwritten first.

  If more than `capacity` values arrive at once only the last `capacity` are kept.
  """
  cap = window.capacity
  values = jnp.asarray(values, jnp.float32)
  valid = jnp.ones(values.shape, bool) if where is None else jnp.broadcast_to(where, values.shape)
  values, valid = jnp.ravel(values), jnp.ravel(valid)
  n_new = jnp.sum(valid, dtype=jnp.int32)
  rank = jnp.cumsum(valid, dtype=jnp.int32) - 1  # position among the new valid values
  keep = valid & (rank >= n_new - cap)
  slot = jnp.where(keep, (window.pointer + rank) % cap, cap)  # cap = out of bounds: dropped
  buffer = window.buffer.at[slot].set(values, mode="drop")
  return Window(buffer, jnp.minimum(window.count + n_new, cap), (window.pointer + n_new) % cap)


def window_stats(window: Window) -> tuple[Array, Array]:
  """(mean, population std) of the filled entries; (0, 0) for an empty window."""
  filled = jnp.arange(window.capacity) < window.count
  n = jnp.maximum(window.count, 1).astype(jnp.float32)
  mean = jnp.sum(jnp.where(filled, window.buffer, 0.0)) / n
  var = jnp.sum(jnp.where(filled, jnp.square(window.buffer - mean), 0.0)) / n
  return mean, jnp.sqrt(var)


def window_standardise(
    window: Window, adv: Array, *, where: Array | None = None, eps: float = 1e-8, kind: str = "mean_std"
) -> Array:
  """kind="mean_std": A^ = (A - mean_W) / (std_W + eps); "std": A^ = A / (std_W + eps) (zeros stay
  zero); "none": A^ = A. A^ = 0 while std_W < eps (except "none"), and 0 where=False."""
  standardise = STANDARDIZERS.get(kind)
  out = standardise(window, jnp.asarray(adv, jnp.float32), eps=eps)
  return out if where is None else jnp.where(where, out, 0.0)


@STANDARDIZERS.register("mean_std")  # the paper: centre and scale
def _mean_std(window: Window, adv: Array, *, eps: float) -> Array:
  mean, std = window_stats(window)
  return jnp.where(std >= eps, (adv - mean) / (std + eps), 0.0)


@STANDARDIZERS.register("std")  # scale only: a zero advantage (policy = reference) stays zero
def _std(window: Window, adv: Array, *, eps: float) -> Array:
  _, std = window_stats(window)
  return jnp.where(std >= eps, adv / (std + eps), 0.0)


@STANDARDIZERS.register("none")
def _none(window: Window, adv: Array, *, eps: float) -> Array:
  del window, eps
  return adv


def kl_estimate(log_prob: Array, ref_log_prob: Array, *, kind: str = "log_ratio") -> Array:
  """Per-sample estimate of KL(pi || pi_ref) on actions drawn from pi; x = log pi - log pi_ref.

  kind="log_ratio": x                    (unbiased, can be negative);
  kind="k3":        exp(-x) - 1 + x      (unbiased, always >= 0).
  """
  estimate = KL_ESTIMATORS.get(kind)
  return estimate(jnp.clip(log_prob - ref_log_prob, -LOG_RATIO_CAP, LOG_RATIO_CAP))


@KL_ESTIMATORS.register("log_ratio")
def _kl_log_ratio(x: Array) -> Array:
  return x


@KL_ESTIMATORS.register("k3")
def _kl_k3(x: Array) -> Array:
  return jnp.expm1(-x) + x


def loss(
    log_prob: Array,
    ref_log_prob: Array,
    adv: Array,
    *,
    where: Array | None = None,
    eps: float = 0.2,
    beta: float = 0.0,
    kl: str = "log_ratio",
    estimator: str = "clipped",
    normalizer: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
  """RRPO loss (to minimise) and diagnostics.

  estimator="clipped":   surr_t = min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t), rho_t = exp(log pi_t - log ref_t);
  estimator="reinforce": surr_t = A_t log pi_t  (no ratio, no clip; gradient A_t grad log pi_t).
  loss = -sum_t where_t (surr_t - beta kl_t) / normalizer, normalizer = sum(where) by default.

  Data parallelism: pass the global number of valid steps as `normalizer`; then every entry of the
  returned loss and of the diagnostics except *_max / *_min is a local sum over that global count,
  so its psum over devices is the exact global mean (use pmax / pmin for *_max / *_min).

  Args:
    log_prob, ref_log_prob, adv: float[..., k] (adv already standardised; treated as data).
    where: bool[..., k] valid steps.
  Returns:
    (loss scalar, dict with surrogate, kl, clip_frac, ratio_mean, log_ratio_mean, ratio_max, ratio_min).
  """
  surrogate = LOSSES.get(estimator)
  log_prob = jnp.asarray(log_prob, jnp.float32)
  ref_log_prob = jnp.asarray(ref_log_prob, jnp.float32)
  adv = jax.lax.stop_gradient(jnp.asarray(adv, jnp.float32))
  where = jnp.ones(log_prob.shape, bool) if where is None else jnp.broadcast_to(where, log_prob.shape)
  if normalizer is None:
    normalizer = jnp.sum(where)
  n = jnp.maximum(jnp.asarray(normalizer, jnp.float32), 1.0)
  log_ratio = jnp.where(where, jnp.clip(log_prob - ref_log_prob, -LOG_RATIO_CAP, LOG_RATIO_CAP), 0.0)
  ratio = jnp.exp(log_ratio)
  surr, clipped = surrogate(ratio, adv, log_prob, eps=eps)
  kl_t = kl_estimate(log_prob, ref_log_prob, kind=kl)
  mean = lambda x: jnp.sum(jnp.where(where, x, 0.0)) / n
  value = -(mean(surr) - beta * mean(kl_t))
  ratio_sg = jax.lax.stop_gradient(ratio)
  diagnostics = {
      "surrogate": jax.lax.stop_gradient(mean(surr)),
      "kl": jax.lax.stop_gradient(mean(kl_t)),
      "clip_frac": mean(clipped.astype(jnp.float32)),
      "ratio_mean": mean(ratio_sg),
      "log_ratio_mean": mean(jax.lax.stop_gradient(log_ratio)),
      "ratio_max": jnp.max(jnp.where(where, ratio_sg, 0.0), initial=0.0),
      "ratio_min": jnp.min(jnp.where(where, ratio_sg, jnp.inf), initial=jnp.inf),
  }
  return value, diagnostics


@LOSSES.register("clipped")  # RRPO / PPO
def _clipped(ratio: Array, adv: Array, log_prob: Array, *, eps: float) -> tuple[Array, Array]:
  del log_prob
  surr = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * adv)
  clipped = ((adv > 0) & (ratio > 1.0 + eps)) | ((adv < 0) & (ratio < 1.0 - eps))
  return surr, clipped


@LOSSES.register("reinforce")  # ablation: no ratio, no clip
def _reinforce(ratio: Array, adv: Array, log_prob: Array, *, eps: float) -> tuple[Array, Array]:
  del eps
  return adv * log_prob, jnp.zeros(ratio.shape, bool)
