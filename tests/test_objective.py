"""RRPO objective: advantage estimators, window standardisation, clipped loss, KL estimators."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrpo_jax.core import objective

# One k = 3 episode: r = (1, 0, 2), V = (0.5, 1, 1), gamma = 0.9, lambda = 0.5.
R, V, GAMMA, LAM = [1.0, 0.0, 2.0], [0.5, 1.0, 1.0], 0.9, 0.5


def test_gae_hand_computed():
  # delta_3 = 2 + 0 - 1 = 1; delta_2 = 0 + 0.9*1 - 1 = -0.1; delta_1 = 1 + 0.9*1 - 0.5 = 1.4.
  # gamma*lambda = 0.45: A_3 = 1; A_2 = -0.1 + 0.45 = 0.35; A_1 = 1.4 - 0.045 + 0.2025 = 1.5575.
  adv = objective.advantages(jnp.array(R), jnp.array(V), kind="gae", gamma=GAMMA, lam=LAM)
  np.testing.assert_allclose(adv, [1.5575, 0.35, 1.0], rtol=1e-6)


def test_gae_policy_equals_reference_is_not_zero():
  # r = V (policy matched the reference): delta_t = gamma V_{t+1}, so A_t != 0 (rrpo-method.md note).
  adv = objective.advantages(jnp.array(V), jnp.array(V), kind="gae", gamma=1.0, lam=1.0)
  np.testing.assert_allclose(adv, [2.0, 1.0, 0.0], rtol=1e-6)  # A_1 = 1 + 1, A_2 = 1, A_3 = 0
  for kind in ("ref_diff_return", "ref_diff"):
    np.testing.assert_allclose(objective.advantages(jnp.array(V), jnp.array(V), kind=kind), 0.0)


def test_reference_difference_forms_hand_computed():
  # r - V = (0.5, -1, 1). Return form: A_3 = 1; A_2 = -1 + 0.9 = -0.1; A_1 = 0.5 - 0.9 + 0.81 = 0.41.
  adv = objective.advantages(jnp.array(R), jnp.array(V), kind="ref_diff_return", gamma=GAMMA)
  np.testing.assert_allclose(adv, [0.41, -0.1, 1.0], rtol=1e-6, atol=1e-7)
  adv = objective.advantages(jnp.array(R), jnp.array(V), kind="ref_diff")
  np.testing.assert_allclose(adv, [0.5, -1.0, 1.0])


def test_advantages_invalid_suffix_and_batch_axes():
  # Step 3 missing: the episode ends after step 2, so V_3 = 0 bootstraps step 2.
  # delta_2 = 0 + 0 - 1 = -1; delta_1 = 1 + 0.9 - 0.5 = 1.4; A_1 = 1.4 - 0.45 = 0.95.
  r = jnp.array([R, [1.0, 0.0, 123.0]])
  v = jnp.array([V, [0.5, 1.0, 77.0]])
  where = jnp.array([[True, True, True], [True, True, False]])
  adv = objective.advantages(r, v, kind="gae", gamma=GAMMA, lam=LAM, where=where)
  np.testing.assert_allclose(adv, [[1.5575, 0.35, 1.0], [0.95, -1.0, 0.0]], rtol=1e-6)
  with pytest.raises(ValueError):
    objective.advantages(r, v, kind="td")


def test_window_fifo_and_standardise():
  w = objective.window_init(4)
  w = objective.window_push(w, jnp.array([1.0, 2.0, 3.0]))
  assert (int(w.count), int(w.pointer)) == (3, 3)
  w = objective.window_push(w, jnp.array([[4.0, 99.0], [5.0, 99.0]]), where=jnp.array([[True, False], [True, False]]))
  # 5 overwrote the oldest (1): contents {2, 3, 4, 5}, mean 3.5, population std sqrt(1.25).
  np.testing.assert_array_equal(w.buffer, [5.0, 2.0, 3.0, 4.0])
  assert (int(w.count), int(w.pointer)) == (4, 1)
  mean, std = objective.window_stats(w)
  np.testing.assert_allclose([mean, std], [3.5, math.sqrt(1.25)], rtol=1e-6)
  out = objective.window_standardise(w, jnp.array([4.5, 3.5, 0.0]), where=jnp.array([True, True, False]))
  np.testing.assert_allclose(out, [1 / math.sqrt(1.25), 0.0, 0.0], rtol=1e-6)
  # More values than capacity at once: only the last 4 stay. Value i (0-based among the 6) goes to
  # slot (1 + i) % 4: 12 -> 3, 13 -> 0, 14 -> 1, 15 -> 2; the pointer (1 + 6) % 4 = 3 is the oldest.
  w = objective.window_push(w, jnp.arange(10.0, 16.0))
  np.testing.assert_array_equal(w.buffer, [13.0, 14.0, 15.0, 12.0])
  assert (int(w.count), int(w.pointer)) == (4, 3)


def test_window_standardise_kinds():
  """Window {2, 3, 4, 5}: mean 3.5, std sqrt(1.25). "std" scales without centring, so the zero
  advantage of a policy that matched its reference stays 0 (under "mean_std" it becomes
  -3.5 / sqrt(1.25)); "none" passes A through; masked entries are 0 in every kind."""
  w = objective.window_push(objective.window_init(4), jnp.array([2.0, 3.0, 4.0, 5.0]))
  adv, where = jnp.array([0.0, 2.0, 7.0]), jnp.array([True, True, False])
  s = math.sqrt(1.25)
  np.testing.assert_allclose(
      objective.window_standardise(w, adv, where=where, kind="mean_std"), [-3.5 / s, -1.5 / s, 0.0], rtol=1e-6
  )
  np.testing.assert_allclose(
      objective.window_standardise(w, adv, where=where, kind="std"), [0.0, 2.0 / s, 0.0], rtol=1e-6
  )
  np.testing.assert_array_equal(objective.window_standardise(w, adv, where=where, kind="none"), [0.0, 2.0, 0.0])
  empty = objective.window_init(4)
  np.testing.assert_array_equal(objective.window_standardise(empty, adv, kind="std"), 0.0)
  with pytest.raises(ValueError, match="standardize kind"):
    objective.window_standardise(w, adv, kind="zscore")


def test_window_constant_or_empty_gives_zero():
  w = objective.window_init(8)
  np.testing.assert_array_equal(objective.window_standardise(w, jnp.array([1.0, -2.0])), 0.0)
  w = objective.window_push(w, jnp.array([2.0, 2.0, 2.0]))  # std = 0 < 1e-8
  np.testing.assert_array_equal(objective.window_standardise(w, jnp.array([2.0, 5.0])), 0.0)
  w = objective.window_push(w, jnp.array([2.0 + 1e-3]))  # std ~ 4.3e-4 >= 1e-8: standardises again
  assert float(objective.window_standardise(w, jnp.array([5.0]))[0]) > 1.0


def test_window_push_jits():
  push = jax.jit(objective.window_push)
  w = push(objective.window_init(3), jnp.array([1.0, 2.0]), where=jnp.array([True, True]))
  w = push(w, jnp.array([3.0, 4.0]), where=jnp.array([False, True]))
  np.testing.assert_array_equal(w.buffer, [1.0, 2.0, 4.0])


def _surrogate_grad(ratio, adv, eps=0.2):
  """(loss, d loss / d log pi) for a single step with log pi_ref = 0."""
  f = lambda lp: objective.loss(lp, jnp.zeros(1), jnp.array([adv]), eps=eps)[0]
  lp = jnp.log(jnp.array([ratio]))
  return float(f(lp)), float(jax.grad(f)(lp)[0])


def test_clip_active_and_inactive():
  # rho = 1.5, A = +1: min(1.5, 1.2) = 1.2, clipped: zero gradient.
  assert _surrogate_grad(1.5, 1.0) == pytest.approx((-1.2, 0.0), rel=1e-6)
  # rho = 1.5, A = -1: min(-1.5, -1.2) = -1.5, unclipped: d(-rho A)/dlog pi = -rho A = 1.5.
  assert _surrogate_grad(1.5, -1.0) == pytest.approx((1.5, 1.5), rel=1e-6)
  # rho = 0.5, A = -1: min(-0.5, -0.8) = -0.8, clipped.
  assert _surrogate_grad(0.5, -1.0) == pytest.approx((0.8, 0.0), rel=1e-6)
  # rho = 0.5, A = +1: min(0.5, 0.8) = 0.5, unclipped: gradient -rho A = -0.5.
  assert _surrogate_grad(0.5, 1.0) == pytest.approx((-0.5, -0.5), rel=1e-6)
  # inside the band (rho = 1.1): plain rho A.
  assert _surrogate_grad(1.1, 2.0) == pytest.approx((-2.2, -2.2), rel=1e-6)


def test_loss_masking_normaliser_and_diagnostics():
  lp = jnp.log(jnp.array([[1.5, 0.5, 1.0], [1.0, 9.0, 9.0]]))
  ref = jnp.zeros((2, 3))
  adv = jnp.array([[1.0, -1.0, 3.0], [2.0, 50.0, 50.0]])
  where = jnp.array([[True, True, True], [True, False, False]])
  value, d = objective.loss(lp, ref, adv, where=where, eps=0.2, beta=0.0)
  # surrogates: 1.2 (clipped), -0.8 (clipped), 3.0, 2.0; mean over 4 valid steps = 5.4 / 4.
  assert float(value) == pytest.approx(-5.4 / 4, rel=1e-6)
  assert float(d["clip_frac"]) == pytest.approx(0.5)
  assert float(d["ratio_mean"]) == pytest.approx((1.5 + 0.5 + 1.0 + 1.0) / 4, rel=1e-6)
  assert (float(d["ratio_max"]), float(d["ratio_min"])) == pytest.approx((1.5, 0.5), rel=1e-6)
  # external normaliser (global count on several devices): local sum / 8.
  value8, d8 = objective.loss(lp, ref, adv, where=where, normalizer=8)
  assert float(value8) == pytest.approx(-5.4 / 8, rel=1e-6)
  assert float(d8["clip_frac"]) == pytest.approx(2 / 8)
  # beta: KL(log-ratio) terms log 1.5 + log 0.5 + 0 + 0 over 4 steps.
  value_b, d_b = objective.loss(lp, ref, adv, where=where, beta=0.5)
  kl = (math.log(1.5) + math.log(0.5)) / 4
  assert float(d_b["kl"]) == pytest.approx(kl, rel=1e-6)
  assert float(value_b) == pytest.approx(-5.4 / 4 + 0.5 * kl, rel=1e-6)
  # all masked: zero loss, zero finite gradient.
  f = lambda x: objective.loss(x, ref, adv, where=jnp.zeros((2, 3), bool), beta=0.1, kl="k3")[0]
  assert float(f(lp)) == 0.0 and np.all(jax.grad(f)(lp) == 0.0)


def test_reinforce_estimator():
  # surr = A log pi: loss = -(2 log 0.5 + (-1) log 0.25) / 2 = -(-2 log 2 + 2 log 2)/2 = 0;
  # gradient d loss / d log pi = -A / n = (-1, 0.5).
  lp = jnp.log(jnp.array([0.5, 0.25]))
  f = lambda x: objective.loss(x, jnp.zeros(2), jnp.array([2.0, -1.0]), estimator="reinforce")[0]
  assert float(f(lp)) == pytest.approx(0.0, abs=1e-6)
  np.testing.assert_allclose(jax.grad(f)(lp), [-1.0, 0.5], rtol=1e-6)


def test_kl_estimators_on_known_distributions():
  # pi = (0.5, 0.3, 0.2), ref = (0.2, 0.5, 0.3): E_pi[estimator] = KL(pi || ref) for both estimators.
  pi, ref = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.5, 0.3])
  exact = float(np.sum(pi * np.log(pi / ref)))  # 0.5 ln 2.5 + 0.3 ln 0.6 + 0.2 ln(2/3) = 0.220...
  assert exact == pytest.approx(0.5 * math.log(2.5) + 0.3 * math.log(0.6) + 0.2 * math.log(2 / 3))
  for kind in ("log_ratio", "k3"):
    est = objective.kl_estimate(jnp.log(pi), jnp.log(ref), kind=kind)
    assert float(jnp.sum(pi * est)) == pytest.approx(exact, rel=1e-5)
  k3 = objective.kl_estimate(jnp.log(pi), jnp.log(ref), kind="k3")
  assert np.all(np.asarray(k3) >= 0.0)  # k3 = (ref/pi - 1) - log(ref/pi) >= 0 sample-wise
  # k3 at x = log 2: 1/2 - 1 + log 2.
  assert float(objective.kl_estimate(jnp.log(2.0), 0.0, kind="k3")) == pytest.approx(math.log(2) - 0.5, rel=1e-6)


def test_extreme_log_ratio_finite():
  f = lambda x: objective.loss(x, jnp.zeros(3), jnp.array([1.0, -1.0, 1.0]), beta=0.1, kl="k3")[0]
  x = jnp.array([200.0, 200.0, -200.0])
  assert np.isfinite(float(f(x))) and np.all(np.isfinite(jax.grad(f)(x)))
