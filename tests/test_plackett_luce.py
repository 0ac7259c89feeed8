"""Plackett-Luce kernel: exact probabilities, sampling law, masks, extreme scores, gradients."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rax
import scipy.stats

from rrpo_jax.core import cpu_kernels
from rrpo_jax.core import plackett_luce as pl


def _ordered_selections(valid_idx, k):
  """All ordered selections of min(k, len(valid_idx)) distinct indices, padded with -1 to k."""
  m = min(k, len(valid_idx))
  return np.array([list(p) + [-1] * (k - m) for p in itertools.permutations(valid_idx, m)], np.int32)


def test_three_items_hand_formula():
  # s = log(1, 2, 3): pi(0, 2, 1) = 1/6 * 3/5 * 2/2 = 0.1; pi(2, 1) = 3/6 * 2/3 = 1/3.
  s = jnp.log(jnp.array([1.0, 2.0, 3.0]))
  lp = pl.log_prob(s, jnp.array([0, 2, 1]))
  np.testing.assert_allclose(lp, np.log([1 / 6, 3 / 5, 1.0]), atol=1e-6)
  np.testing.assert_allclose(jnp.exp(pl.log_prob(s, jnp.array([2, 1])).sum()), 1 / 3, rtol=1e-6)
  # temperature 2 halves the log-weights: weights sqrt(1, 2, 3); pi(2 first) = sqrt3 / (1 + sqrt2 + sqrt3).
  lp_t = pl.log_prob(s, jnp.array([2]), temperature=2.0)
  np.testing.assert_allclose(jnp.exp(lp_t[0]), math.sqrt(3) / (1 + math.sqrt(2) + math.sqrt(3)), rtol=1e-6)


_log_prob_jit = jax.jit(pl.log_prob)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_enumeration_sums_to_one(n, k, masked):
  # Every case is padded to one shape (N = 6 via the mask, k = 3 via -1 slots, 120 rows) so one
  # compiled log_prob serves all 36 cases; padding rows are excluded from the sum.
  rng = np.random.default_rng(100 * n + 10 * k + masked)
  scores = np.full(6, 1e3, np.float32)  # big scores on padding slots: must be ignored
  scores[:n] = rng.normal(size=n) * 2
  where = np.arange(6) < n
  if masked and n > 1:
    where[rng.choice(n, size=n // 2, replace=False)] = False
  acts = _ordered_selections(np.flatnonzero(where), k)
  rows = len(acts)
  acts = np.pad(acts, ((0, 120 - rows), (0, 3 - k)), constant_values=-1)
  lp = np.asarray(_log_prob_jit(np.broadcast_to(scores, (120, 6)), acts, where=np.broadcast_to(where, (120, 6))))
  assert np.exp(lp[:rows].sum(-1)).sum() == pytest.approx(1.0, abs=1e-6)
  assert np.all(lp[acts < 0] == 0.0)


def test_full_ranking_matches_listmle():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(4, 7)).astype(np.float32)
  perm = np.stack([rng.permutation(7) for _ in range(4)]).astype(np.int32)
  labels = np.zeros((4, 7), np.float32)
  np.put_along_axis(labels, perm, np.arange(7, 0, -1, dtype=np.float32)[None], axis=-1)  # perm[0] best
  ours = pl.log_prob(scores, perm).sum(-1)
  np.testing.assert_allclose(ours, -rax.listmle_loss(scores, labels, reduce_fn=None), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_frequencies_chi_square(temperature):
  n, k, draws = 5, 3, 40_000
  scores = jnp.array([1.0, 0.5, 0.0, -0.5, -1.0])
  acts = _ordered_selections(np.arange(n), k)  # 60 ordered selections
  probs = np.exp(
      np.asarray(pl.log_prob(jnp.broadcast_to(scores, (len(acts), n)), acts, temperature=temperature).sum(-1))
  )
  samples = np.asarray(
      pl.sample(jnp.broadcast_to(scores, (draws, n)), key=jax.random.key(7), k=k, temperature=temperature)
  )
  assert np.all([len(set(row)) == k for row in samples[:1000]])
  code = lambda a: (a[..., 0] * n + a[..., 1]) * n + a[..., 2]
  counts = np.bincount(code(samples), minlength=n**3)[code(acts)]
  assert counts.sum() == draws  # nothing outside the 60 valid selections
  expected = probs.astype(np.float64) * draws
  small = expected < 5  # pool rare selections so the chi-square approximation holds
  obs, exp = counts[~small].astype(np.float64), expected[~small]
  if small.any():
    obs, exp = np.append(obs, counts[small].sum()), np.append(exp, expected[small].sum())
  assert scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_greedy_ties_and_masks():
  s = jnp.array([[1.0, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0]])
  where = jnp.array([[True, True, True, True], [False, True, False, True]])
  np.testing.assert_array_equal(pl.greedy(s, k=3, where=where), [[1, 2, 0], [1, 3, -1]])
  assert pl.greedy(s, k=2).dtype == jnp.int32


def test_masked_never_drawn_and_short_rows():
  where = jnp.array([[True, False, True, False, False, True]] * 2000)
  s = jnp.broadcast_to(jnp.array([0.0, 50.0, 0.0, 50.0, 50.0, 0.0]), where.shape)
  a = np.asarray(pl.sample(s, key=jax.random.key(1), k=4, where=where))
  assert set(np.unique(a[:, :3])) == {0, 2, 5}
  assert np.all(a[:, 3] == -1)  # only 3 valid candidates: the 4th slot does not exist


def test_all_masked_row_no_nan_no_contribution():
  s = jnp.array([[1.0, 2.0, 3.0], [jnp.nan, jnp.inf, -jnp.inf]])
  where = jnp.array([[True, True, True], [False, False, False]])
  a = pl.sample(s, key=jax.random.key(0), k=2, where=where)
  np.testing.assert_array_equal(a[1], [-1, -1])
  np.testing.assert_array_equal(pl.greedy(s, k=2, where=where)[1], [-1, -1])
  f = lambda x: pl.log_prob(x, a, where=where).sum() + pl.entropy(x, where=where).sum()
  lp = pl.log_prob(s, a, where=where)
  np.testing.assert_array_equal(lp[1], [0.0, 0.0])
  assert float(pl.entropy(s, where=where)[1]) == 0.0
  g = jax.jit(jax.grad(f))(s)
  assert np.all(np.isfinite(g)) and np.all(g[1] == 0.0)


def test_extreme_scores_finite_and_exact():
  s = jnp.array([1e4, -1e4, 0.0, 5e3, 1e4])
  where = jnp.array([True, True, False, True, True])
  acts = jnp.array([1, 0, 3])
  lp = pl.log_prob(s, acts, where=where)
  # step 1 picks -1e4 among {1e4, -1e4, 5e3, 1e4}: -1e4 - (1e4 + log 2); step 2: 1e4 among
  # {1e4, 5e3, 1e4}: -log 2 (the 5e3 term underflows); step 3: 5e3 among {5e3, 1e4}: -5e3.
  np.testing.assert_allclose(lp, [-2e4 - math.log(2), -math.log(2), -5e3], rtol=1e-6)
  for x in (s, -s, s.astype(jnp.bfloat16)):
    g = jax.jit(jax.grad(lambda v: pl.log_prob(v, acts, where=where).sum() + pl.entropy(v, where=where)))(x)
    assert np.all(np.isfinite(np.asarray(g, np.float32)))
  assert pl.log_prob(s.astype(jnp.bfloat16), acts, where=where).dtype == jnp.float32


def test_gradient_matches_finite_differences_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    s = jnp.asarray(rng.normal(size=6), jnp.float64)
    where = jnp.array([True, True, False, True, True, True])
    acts = jnp.array([4, 0, -1, 3])
    f = jax.jit(
        lambda x: jnp.sum(pl.log_prob(x, acts, temperature=0.7, where=where) * jnp.array([1.0, -2.0, 3.0, 0.5]))
    )
    g = jax.grad(f)(s)
    h = 1e-6
    fd = np.array([(f(s.at[i].add(h)) - f(s.at[i].add(-h))) / (2 * h) for i in range(6)])
    np.testing.assert_allclose(g, fd, atol=1e-7)
    assert g[2] == 0.0  # the masked candidate gets no gradient


def test_entropy_hand_computed():
  # uniform over 4 valid: log 4; p = (1/2, 1/4, 1/4) via s = log(2, 1, 1): H = 1.5 log 2.
  np.testing.assert_allclose(pl.entropy(jnp.zeros(5), where=jnp.arange(5) < 4), math.log(4), rtol=1e-6)
  np.testing.assert_allclose(pl.entropy(jnp.log(jnp.array([2.0, 1.0, 1.0]))), 1.5 * math.log(2), rtol=1e-6)


def test_score_function_estimator_matches_exact_gradient():
  # E[R] = sum_a pi(a) R(a) over the 20 ordered pairs (N=5, k=2); grad E[R] = E[R(a) grad log pi(a)].
  n, k, draws = 5, 2, 100_000
  rng = np.random.default_rng(11)
  s = jnp.asarray(rng.normal(size=n), jnp.float32)
  table = jnp.asarray(rng.uniform(size=(n, n)), jnp.float32)
  reward = lambda a: table[a[..., 0], a[..., 1]]
  acts = jnp.asarray(_ordered_selections(np.arange(n), k))
  expected_reward = lambda x: jnp.sum(
      jnp.exp(pl.log_prob(jnp.broadcast_to(x, (len(acts), n)), acts).sum(-1)) * reward(acts)
  )
  exact = jax.jit(jax.grad(expected_reward))(s)
  samples = pl.sample(jnp.broadcast_to(s, (draws, n)), key=jax.random.key(5), k=k)
  per_sample = jax.jit(jax.vmap(jax.grad(lambda x, a: reward(a) * pl.log_prob(x, a).sum()), in_axes=(None, 0)))(
      s, samples
  )
  mean, se = per_sample.mean(0), per_sample.std(0) / math.sqrt(draws)
  assert np.all(np.abs(mean - exact) < 5 * se + 1e-5), (mean, exact, se)
  np.testing.assert_allclose(exact.sum(), 0.0, atol=1e-6)  # shift invariance of the softmax


def test_jit_and_leading_axes():
  s = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 8)), jnp.float32)
  a = jax.jit(lambda x, key: pl.sample(x, key=key, k=3))(s, jax.random.key(0))
  assert a.shape == (2, 3, 3) and a.dtype == jnp.int32
  assert jax.jit(pl.log_prob)(s, a).shape == (2, 3, 3)
  np.testing.assert_array_equal(pl.greedy(s, k=3), jnp.argsort(-s, axis=-1)[..., :3])


def test_repeated_and_missing_slots_are_invalid():
  # a repeated pick is invalid (0) and marks nothing; later slots see the set without the first pick.
  s = jnp.log(jnp.array([1.0, 2.0, 3.0, 4.0]))
  lp = pl.log_prob(s, jnp.array([1, 1, 2, -1]))
  np.testing.assert_allclose(lp, [math.log(2 / 10), 0.0, math.log(3 / 8), 0.0], rtol=1e-6)
  acts = jnp.array([[1, 1, 2, -1], [1, 7, 2, 0]])
  where = jnp.array([[True] * 4, [True, True, False, True]])
  np.testing.assert_array_equal(pl.valid_actions(acts, where=where), [[1, 0, 1, 0], [1, 0, 0, 1]])
  # k > N: the slots past N do not exist.
  np.testing.assert_array_equal(pl.greedy(jnp.array([0.0, 1.0]), k=3), [1, 0, -1])
  np.testing.assert_array_equal(np.sort(pl.sample(jnp.zeros(2), key=jax.random.key(0), k=3)[:2]), [0, 1])


def _chi_square_pvalue(samples, scores, k, temperature, where=None):
  """p-value of the ordered-selection counts of `samples` against the exact Plackett-Luce law."""
  n = scores.shape[-1]
  valid_idx = np.arange(n) if where is None else np.flatnonzero(where)
  acts = _ordered_selections(valid_idx, k)
  w = None if where is None else jnp.broadcast_to(where, (len(acts), n))
  probs = np.exp(
      np.asarray(pl.log_prob(jnp.broadcast_to(scores, (len(acts), n)), acts, temperature=temperature, where=w).sum(-1))
  )
  code = lambda a: (a[..., 0] * n + a[..., 1]) * n + a[..., 2]
  counts = np.bincount(code(samples), minlength=n**3)[code(acts)]
  assert counts.sum() == len(samples)  # nothing outside the valid ordered selections
  expected = probs.astype(np.float64) * len(samples)
  small = expected < 5
  obs, exp = counts[~small].astype(np.float64), expected[~small]
  if small.any():
    obs, exp = np.append(obs, counts[small].sum()), np.append(exp, expected[small].sum())
  return scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


_sample_sequential_jit = jax.jit(pl._sample_sequential, static_argnames=("k", "block"))


@pytest.mark.parametrize(
    "temperature,block,masked", [(0.5, 2, False), (1.0, 1, False), (2.0, 5, False), (1.0, 4, True), (1.0, 3, True)]
)
def test_sequential_sample_frequencies_chi_square(temperature, block, masked):
  # The sequential two-level sampler (sample() uses it for k <= min(32, N/4)), forced on N = 6 with
  # several block lengths (block 4 pads 6 to 8; block 1 and 5 are the degenerate cases).
  n, k, draws = 6, 3, 40_000
  scores = jnp.array([1.0, 0.5, 0.0, -0.5, -1.0, 0.7])
  where = jnp.array([True, True, False, True, True, True]) if masked else jnp.ones(n, bool)
  s, w = pl._prepare(jnp.broadcast_to(scores, (draws, n)), temperature, jnp.broadcast_to(where, (draws, n)))
  samples = np.asarray(_sample_sequential_jit(s, w, key=jax.random.key(3), k=k, block=block))
  assert _chi_square_pvalue(samples, scores, k, temperature, where=where if masked else None) > 1e-3


@pytest.mark.parametrize("block", [1, 2, 5])
def test_sequential_sample_extreme_scores(block):
  # Score gaps far beyond float32 exp range: each pick must be the largest remaining score, which needs
  # the per-block max shifts (a single shift would underflow every weight after the first pick).
  s = jnp.array([[-1e4, 1e4, 0.0, 5e3, -300.0], [0.0, -200.0, -400.0, -600.0, -800.0]])
  where = jnp.array([[True, True, True, True, False], [True] * 5])
  a = pl._sample_sequential(s, where, key=jax.random.key(0), k=5, block=block)
  np.testing.assert_array_equal(a, [[1, 3, 2, 0, -1], [0, 1, 2, 3, 4]])


def test_sample_large_n_masks_short_rows_and_distinct():
  # k <= N/4 goes through the sequential sampler: masks, -1 slots, all-masked rows,
  # distinct picks, leading axes.
  n, k = 300, 10
  rng = np.random.default_rng(4)
  s = jnp.asarray(rng.normal(size=(2, 3, n)) * 3, jnp.float32)
  where = np.asarray(rng.random((2, 3, n)) < 0.5)
  where[0, 1] = False
  where[1, 2] = False
  where[1, 2, [7, 250, n - 1]] = True  # 3 valid candidates only
  s = jnp.where(where, s, 1e3)  # big scores on masked candidates must be ignored
  a = np.asarray(jax.jit(lambda x, key: pl.sample(x, key=key, k=k, where=where))(s, jax.random.key(9)))
  assert a.shape == (2, 3, k) and a.dtype == np.int32
  np.testing.assert_array_equal(a[0, 1], -1)
  assert set(a[1, 2, :3]) == {7, 250, n - 1} and np.all(a[1, 2, 3:] == -1)
  for row, w in zip(a.reshape(-1, k), where.reshape(-1, n)):
    real = row[row >= 0]
    assert len(set(real)) == len(real) == min(k, w.sum())
    assert np.all(w[real])


def test_sample_large_n_first_pick_frequencies():
  # First-pick law of the sequential sampler at N = 1000 (real block structure, 25 blocks of 40) against
  # softmax(s / T), on 8 groups of candidates (chi-square over group frequencies).
  n, draws, temperature = 1000, 20_000, 0.5
  rng = np.random.default_rng(6)
  scores = jnp.asarray(rng.normal(size=n), jnp.float32)
  a = np.asarray(
      jax.jit(lambda x, key: pl.sample(x, key=key, k=2, temperature=temperature))(
          jnp.broadcast_to(scores, (draws, n)), jax.random.key(8)
      )
  )
  assert np.all(a[:, 0] != a[:, 1])
  p = np.asarray(jax.nn.softmax(scores / temperature), np.float64)
  order = np.argsort(-p)
  group = np.zeros(n, int)  # groups of consecutive candidates (by decreasing p), about 1/8 of the mass each
  group[order] = np.minimum(((np.cumsum(p[order]) - p[order]) * 8).astype(int), 7)
  obs = np.bincount(group[a[:, 0]], minlength=8).astype(np.float64)
  exp = np.bincount(group, weights=p, minlength=8) * draws
  assert scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_threefry_known_answer_and_key_types():
  # Threefry-2x32, 20 rounds: the Random123 known-answer vector (also what jax's threefry gives).
  y = cpu_kernels.threefry2x32(
      jnp.uint32(0x13198A2E),
      jnp.uint32(0x03707344),
      jnp.array([0x243F6A88], jnp.uint32),
      jnp.array([0x85A308D3], jnp.uint32),
  )
  assert [int(v[0]) for v in y] == [0xC4923A9C, 0x483DF7A0]
  bits = np.asarray(cpu_kernels.bits(jax.random.key(0), (4, 1000)))
  assert bits.dtype == np.uint32 and len(np.unique(bits)) > 3990  # no repeated counters
  assert abs(np.mean(bits / 2.0**32) - 0.5) < 0.01
  for key in (jax.random.key(0, impl="rbg"), jax.random.PRNGKey(0)):
    assert cpu_kernels.bits(key, (3, 5)).shape == (3, 5)
  assert not np.array_equal(cpu_kernels.bits(jax.random.key(1), (8,)), cpu_kernels.bits(jax.random.key(2), (8,)))
