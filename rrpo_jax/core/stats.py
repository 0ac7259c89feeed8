"""Paired statistics for comparing two systems evaluated on the same questions.

For per-question scores a_q, b_q (q = 1..n) and d_q = a_q - b_q:
  diff      mean(d) (x100 when the scores are in [0, 1] and scale=100);
  ci95      the 2.5% / 97.5% percentiles of mean(d*) over B paired bootstrap resamples d* (questions
            drawn with replacement, the same draw for both systems: the pairing is kept);
  p         two-sided paired t-test, t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom
            (the paper's test); 1.0 when every d_q is 0;
  mde80     the minimum detectable effect at 80% power for this n and spread: the true mean
            difference a two-sided 5% test detects 80% of the time,
            (z_0.975 + z_0.80) * sd(d) / sqrt(n) = 2.80 sd(d) / sqrt(n) (same scale as diff). A
            non-significant diff smaller than mde80 says the comparison could not have seen it,
            not that there is no effect (rrpo-method.md, Statistics).
The resamples are seeded, so a comparison is reproducible.
"""

from __future__ import annotations

import math
import statistics
from typing import Mapping, Sequence

import numpy as np

RESAMPLES = 10_000
PAIRS = (("policy", "reference"), ("policy", "retriever"), ("reference", "retriever"))
# z_0.975 + z_0.80 = 1.95996 + 0.84162 = 2.80158: a two-sided 5% test at 80% power.
Z_MDE80 = statistics.NormalDist().inv_cdf(0.975) + statistics.NormalDist().inv_cdf(0.80)
Scores = Sequence[float] | np.ndarray  # per-question scores: a list or a 1-D array


def mde80(a: Scores, b: Scores) -> float:
  """(z_0.975 + z_0.80) * sd(a - b) / sqrt(n), sd with n - 1 degrees of freedom; nan for n < 2."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if d.size < 2:
    return float("nan")
  return float(Z_MDE80 * d.std(ddof=1) / math.sqrt(d.size))


def paired_t_test(a: Scores, b: Scores) -> tuple[float, float]:
  """(t, two-sided p) of the paired t-test of mean(a - b) = 0; (0, 1) when all differences are 0."""
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel  (slow import)

  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if d.size < 2:
    return float("nan"), float("nan")
  if np.all(d == d[0]):
    return (0.0, 1.0) if d[0] == 0 else (math.copysign(math.inf, d[0]), 0.0)
  res = scipy_stats.ttest_rel(np.asarray(a, np.float64), np.asarray(b, np.float64))
  return float(res.statistic), float(res.pvalue)


def paired_bootstrap(
    a: Scores, b: Scores, *, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
  """(mean(a - b), lo, hi): the percentile interval of the mean paired difference."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if d.size == 0:
    return float("nan"), float("nan"), float("nan")
  rng = np.random.default_rng(seed)
  means = np.empty((resamples,), np.float64)
  chunk = max(1, 2_000_000 // d.size)  # bounded memory for large n
  for lo in range(0, resamples, chunk):
    m = min(chunk, resamples - lo)
    means[lo : lo + m] = d[rng.integers(0, d.size, size=(m, d.size))].mean(axis=1)
  tail = (1.0 - level) / 2
  lo_q, hi_q = np.quantile(means, [tail, 1.0 - tail])
  return float(d.mean()), float(lo_q), float(hi_q)


def compare(a: Scores, b: Scores, *, scale: float = 100.0, resamples: int = RESAMPLES, seed: int = 0) -> dict:
  """{"diff", "ci95": [lo, hi], "p", "t", "mde80", "n", "differ"} for per-question scores a vs b
  (diff, ci95 and mde80 scaled)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired scores need the same questions: {a.shape} vs {b.shape}")
  diff, lo, hi = paired_bootstrap(a, b, resamples=resamples, seed=seed)
  t, p = paired_t_test(a, b)
  return {
      "diff": scale * diff,
      "ci95": [scale * lo, scale * hi],
      "p": p,
      "t": t,
      "mde80": scale * mde80(a, b),
      "n": int(a.size),
      "differ": float(np.mean(a != b)) if a.size else float("nan"),
  }


def compare_rows(
    rows_a: Sequence[Mapping],
    rows_b: Sequence[Mapping],
    *,
    metrics: Sequence[str] = ("em", "f1"),
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
  """Paired comparison of two per-question row lists ({"qid", metric: value in [0, 1]}) on their
  common qids, per metric; the result also says how many questions each side had."""
  by_b = {str(r["qid"]): r for r in rows_b}
  common = [r for r in rows_a if str(r["qid"]) in by_b]
  out = {
      m: compare([r[m] for r in common], [by_b[str(r["qid"])][m] for r in common], resamples=resamples, seed=seed)
      for m in metrics
  }
  out["questions"] = {"a": len(rows_a), "b": len(rows_b), "common": len(common)}
  return out


def significant(c: Mapping) -> bool:
  """True when the 95% interval excludes 0."""
  lo, hi = c["ci95"]
  return bool(lo > 0 or hi < 0)


def verdict(c: Mapping) -> str:
  """ "significant" when the 95% interval excludes 0 and the paired t-test's p < 0.05, "not
  significant" when neither says so, "borderline" when the two disagree (an interval that just
  excludes 0 with p = 0.051 is reported as such, not as a finding)."""
  by_interval, by_test = significant(c), bool(c.get("p", math.nan) < 0.05)
  if by_interval == by_test:
    return "significant" if by_interval else "not significant"
  return "borderline: " + ("interval excludes 0, p >= 0.05" if by_interval else "p < 0.05, interval includes 0")


def describe(c: Mapping) -> str:
  """'+1.20 [-0.40, +2.80] p=0.140 mde 2.10' (x100 units; the mde part where c has mde80)."""
  lo, hi = c["ci95"]
  p = c["p"]
  p_text = "p=nan" if not math.isfinite(p) else (f"p={p:.3f}" if p >= 0.001 else f"p={p:.1e}")
  mde = f" mde {c['mde80']:.2f}" if "mde80" in c else ""
  return f"{c['diff']:+.2f} [{lo:+.2f}, {hi:+.2f}] {p_text}{mde}"
