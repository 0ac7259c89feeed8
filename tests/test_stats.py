"""Paired statistics (stats.py), the evaluation's comparisons and the compare command line."""

import json
import math
import os

import numpy as np
import pytest
import scipy.stats

from harness import fake_gcs
from rrpo_jax import compare, paths
from rrpo_jax.train import evaluation
from rrpo_jax.core import stats


def test_paired_t_test_matches_scipy_and_hand_example():
  # d = (1, 0, 1, 0): mean 0.5, sd sqrt(1/3), t = 0.5 / (sqrt(1/3) / 2) = sqrt(3).
  t, p = stats.paired_t_test([1, 1, 1, 0], [0, 1, 0, 0])
  assert t == pytest.approx(math.sqrt(3))
  assert p == pytest.approx(2 * scipy.stats.t.sf(math.sqrt(3), df=3))
  rng = np.random.default_rng(0)
  a, b = rng.random(50), rng.random(50)
  ref = scipy.stats.ttest_rel(a, b)
  assert stats.paired_t_test(a, b) == pytest.approx((ref.statistic, ref.pvalue))
  assert stats.paired_t_test([0.5, 1.0], [0.5, 1.0]) == (0.0, 1.0)  # identical systems: no evidence at all


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
  rng = np.random.default_rng(1)
  a = rng.random(200)
  b = a - 0.1 + 0.05 * rng.standard_normal(200)  # a beats b by 0.1 on average
  diff, lo, hi = stats.paired_bootstrap(a, b, resamples=10_000, seed=3)
  assert diff == pytest.approx(float(np.mean(a - b)))
  assert lo < diff < hi and lo > 0.08 and hi < 0.12
  # The percentile interval of a mean of n iid differences has half-width ~ 1.96 sd / sqrt(n).
  half = 1.96 * np.std(a - b, ddof=1) / math.sqrt(200)
  assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
  assert stats.paired_bootstrap(a, b, resamples=10_000, seed=3) == (diff, lo, hi)
  assert stats.paired_bootstrap(a, b, resamples=10_000, seed=4) != (diff, lo, hi)


def test_compare_rows_pairs_by_qid_and_scales():
  rows_a = [
      {"qid": "q1", "em": 1.0, "f1": 1.0},
      {"qid": "q2", "em": 0.0, "f1": 0.5},
      {"qid": "q3", "em": 1.0, "f1": 1.0},
  ]
  rows_b = [{"qid": "q3", "em": 0.0, "f1": 0.0}, {"qid": "q1", "em": 1.0, "f1": 1.0}]  # no q2, other order
  c = stats.compare_rows(rows_a, rows_b, resamples=1000)
  assert c["questions"] == {"a": 3, "b": 2, "common": 2}
  assert c["em"]["diff"] == pytest.approx(50.0) and c["f1"]["diff"] == pytest.approx(50.0)
  assert c["f1"]["n"] == 2 and c["f1"]["differ"] == 0.5
  lo, hi = c["f1"]["ci95"]
  assert 0.0 <= lo <= 50.0 <= hi <= 100.0
  assert stats.significant({"ci95": [0.1, 2.0]}) and not stats.significant({"ci95": [-0.1, 2.0]})
  assert stats.verdict({"ci95": [0.1, 2.0], "p": 0.01}) == "significant"
  assert stats.verdict({"ci95": [-0.1, 2.0], "p": 0.2}) == "not significant"
  assert stats.verdict({"ci95": [0.42, 7.73], "p": 0.0508}) == "borderline: interval excludes 0, p >= 0.05"
  assert stats.verdict({"ci95": [-0.1, 2.0], "p": 0.04}) == "borderline: p < 0.05, interval includes 0"
  assert stats.verdict({"ci95": [0.0, 0.0], "p": float("nan")}) == "not significant"  # no question differs
  assert stats.describe({"diff": 1.2, "ci95": [-0.4, 2.8], "p": 0.14}) == "+1.20 [-0.40, +2.80] p=0.140"
  assert (
      stats.describe({"diff": 1.2, "ci95": [-0.4, 2.8], "p": 0.14, "mde80": 2.104})
      == "+1.20 [-0.40, +2.80] p=0.140 mde 2.10"
  )


def test_mde80_by_hand():
  # z_0.975 = 1.959964, z_0.80 = 0.841621 (normal quantiles): their sum is the 80%-power multiplier.
  assert stats.Z_MDE80 == pytest.approx(1.959964 + 0.841621, abs=1e-6)
  # d = (1, 0, 1, 0) as before: sd = sqrt(1/3), n = 4 -> mde80 = 2.801585 * sqrt(1/3) / 2 = 0.80875.
  assert stats.mde80([1, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(2.801585 * math.sqrt(1 / 3) / 2, rel=1e-6)
  c = stats.compare([1, 1, 1, 0], [0, 1, 0, 0], resamples=200)
  assert c["mde80"] == pytest.approx(80.875, abs=1e-3)  # x100 like diff
  # d = (0.2, -0.1, 0.4, 0.1, -0.2): mean 0.08, sum of squares about the mean 0.228, sd = sqrt(0.228 / 4).
  a, b = [0.7, 0.4, 0.9, 0.6, 0.3], [0.5, 0.5, 0.5, 0.5, 0.5]
  assert stats.compare(a, b, resamples=200)["mde80"] == pytest.approx(
      100 * 2.801585 * math.sqrt(0.228 / 4) / math.sqrt(5), rel=1e-5
  )
  assert stats.compare([0.5, 1.0], [0.5, 1.0], resamples=200)["mde80"] == 0.0  # no spread at all
  assert math.isnan(stats.mde80([1.0], [0.0]))  # one question: no sd


def test_mde80_is_the_effect_detected_with_80_percent_power():
  # Draw n = 60 paired differences with true mean = mde80 of their sd: a two-sided 5% paired t-test
  # then rejects in ~80% of repetitions (77-78% with the t distribution's heavier tails at n = 60).
  rng = np.random.default_rng(0)
  n, sd, reps = 60, 0.2, 4000
  effect = stats.Z_MDE80 * sd / math.sqrt(n)
  d = effect + sd * rng.standard_normal((reps, n))
  p = scipy.stats.ttest_1samp(d, 0.0, axis=1).pvalue
  assert 0.75 < float(np.mean(p < 0.05)) < 0.82
  # ... and the estimate from one draw is that effect up to the sd's sampling error.
  assert stats.mde80(d[0], np.zeros(n)) == pytest.approx(effect, rel=0.25)


class _Ex:

  def __init__(self, qid, answers, n=3):
    self.qid, self.question, self.answers = qid, f"q {qid}", answers
    self.candidates = [
        type("C", (), {"pid": f"{qid}-{j}", "title": f"t{j}", "text": f"x{j}", "has_answer": j == 1})()
        for j in range(n)
    ]


def _fake_answer(requests):
  from rrpo_jax.reader import Response  # pylint: disable=import-outside-toplevel
  # The answer is the title of the last passage: candidate 1 ("t1") is the gold answer of every question.
  return [Response(text=r.passages[-1].title) for r in requests]


def _results(policy_first, n_questions=40):
  examples = [_Ex(f"q{i}", ["t1"]) for i in range(n_questions)]
  orders = {
      "retriever": [[0, 1, 2]] * n_questions,
      "reference": [[0, 1, 2]] * n_questions,
      "policy": [[1, 0, 2] if i < policy_first else [0, 1, 2] for i in range(n_questions)],
  }
  return examples, evaluation.evaluate(examples, orders, answer_fn=_fake_answer, k=1, resamples=2000, oracle=True)


def test_evaluation_reports_comparisons_and_oracle():
  _, res = _results(policy_first=30)
  c = res["comparisons"]
  assert set(c) == {"policy-reference", "policy-retriever", "reference-retriever"}
  # The policy puts the gold candidate first on 30 of 40 questions, the reference on none: +75 EM.
  assert c["policy-reference"]["em"]["diff"] == pytest.approx(75.0)
  assert stats.significant(c["policy-reference"]["em"]) and c["policy-reference"]["em"]["p"] < 1e-6
  assert c["reference-retriever"]["f1"]["diff"] == 0.0 and c["reference-retriever"]["f1"]["p"] == 1.0
  assert res["systems"]["oracle@1"]["em"] == 100.0  # candidate 1 alone always answers right
  assert all(row["order"] == [1] for row in res["per_query"]["oracle@1"])
  # 30 of 40 differences are 1, 10 are 0: sd = sqrt(40 * 0.75 * 0.25 / 39); mde80 = 2.801585 sd / sqrt(40).
  mde = 100 * 2.801585 * math.sqrt(40 * 0.75 * 0.25 / 39) / math.sqrt(40)
  assert c["policy-reference"]["em"]["mde80"] == pytest.approx(mde, rel=1e-5)
  text = evaluation.table(res)
  assert "policy - reference" in text and "EM significant" in text
  assert "reference - retriever" in text and "F1 not significant" in text
  assert f"mde {mde:.2f}" in text and "minimum detectable effect at 80% power" in text
  flat = evaluation.flat_metrics(res)
  assert flat["policy-reference_em_diff"] == pytest.approx(75.0) and "policy-reference_f1_p" in flat
  assert flat["policy-reference_em_mde80"] == pytest.approx(mde, rel=1e-5)


def _write_run(path, results):
  """A workdir's results.json and its eval/step_7/results.json (path: local or a gs:// URI)."""
  paths.write_text(paths.join(path, "eval", "step_7", "results.json"), json.dumps({"step": 7, **results}))
  paths.write_text(
      paths.join(path, "results.json"), json.dumps({"step": 7, "k": results["k"], "systems": results["systems"]})
  )


def test_compare_reads_runs_on_gcs(tmp_path):
  _, a = _results(policy_first=30)
  _, b = _results(policy_first=10)
  with fake_gcs(tmp_path / "gcs"):
    _write_run("gs://bucket/runs/a", a)
    _write_run("gs://bucket/runs/b", b)
    out = compare.run(["gs://bucket/runs/a", "gs://bucket/runs/b/results.json"])
    assert "paired over the 40 questions" in out and "EM  +50.00" in out
    paths.write_text("gs://bucket/runs/c/config.json", "{}")  # a run never evaluated
    with pytest.raises(compare.CompareError, match="gs://bucket/runs/c: no results.json"):
      compare.run(["gs://bucket/runs/c", "gs://bucket/runs/b"])
  assert not os.path.exists(os.path.join(os.getcwd(), "gs:"))


def test_compare_cli_between_two_runs(tmp_path, capsys):
  _, a = _results(policy_first=30)
  _, b = _results(policy_first=10)
  _write_run(str(tmp_path / "a"), a)
  _write_run(str(tmp_path / "b"), b)
  out = compare.run([str(tmp_path / "a"), str(tmp_path / "b")])
  assert "paired over the 40 questions" in out and "EM  +50.00" in out and "(significant" in out
  parsed = json.loads(
      compare.run([str(tmp_path / "a" / "results.json"), str(tmp_path / "b"), "--json", "--system_b=reference"])
  )
  assert parsed["em"]["diff"] == pytest.approx(75.0)
  with pytest.raises(SystemExit) as e:
    compare.main([str(tmp_path / "a"), str(tmp_path / "b"), "--system_a=nope"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "per_query.nope" in err and "Traceback" not in err
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(compare.CompareError, match=r"bad.json: line 1: not JSON"):
    compare.run([str(tmp_path / "bad.json"), str(tmp_path / "b")])
  (tmp_path / "latin1.json").write_bytes(b'{"a": "\xff"}')
  with pytest.raises(compare.CompareError, match=r"latin1.json: byte 7: not UTF-8 text"):
    compare.run([str(tmp_path / "latin1.json"), str(tmp_path / "b")])
