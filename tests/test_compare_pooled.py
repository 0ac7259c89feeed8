"""python -m rrpo_jax.compare over cross-fitted folds: pooled per-question rows, disjoint folds,
two systems of the same runs, the pooled results file."""

import json
import math
import pathlib

import pytest

from rrpo_jax import compare, paths
from rrpo_jax.core import stats


def _rows(qids, em):
  return [
      {"qid": q, "answer": "x", "em": float(e), "f1": float(e) / 2, "hit": float(e), "order": [0]}
      for q, e in zip(qids, em)
  ]


def _run(path, qids, *, policy, reference, k=3):
  """A fold's workdir: results.json naming step 5 and eval/step_5/results.json with the rows."""
  results = {
      "k": k,
      "split": "heldout",
      "systems": {},
      "per_query": {
          "policy": _rows(qids, policy),
          "reference": _rows(qids, reference),
          "retriever": _rows(qids, [0] * len(qids)),
      },
  }
  paths.write_text(paths.join(path, "eval", "step_5", "results.json"), json.dumps({"step": 5, **results}))
  paths.write_text(paths.join(path, "results.json"), json.dumps({"step": 5, "k": k, "systems": {}}))
  return str(path)


@pytest.fixture
def folds(tmp_path):
  """Experiment A (policy right on 15 of 20 questions per fold) and B (on 10 of 20), folds q0-19 / q20-39."""
  f0, f1 = [f"q{i}" for i in range(20)], [f"q{i}" for i in range(20, 40)]
  a_pol, b_pol = [1] * 15 + [0] * 5, [1] * 10 + [0] * 10
  ref = [1] * 5 + [0] * 15
  return {
      "a_f0": _run(tmp_path / "a_f0", f0, policy=a_pol, reference=ref),
      "a_f1": _run(tmp_path / "a_f1", f1, policy=a_pol, reference=ref),
      "b_f0": _run(tmp_path / "b_f0", f0, policy=b_pol, reference=ref),
      "b_f1": _run(tmp_path / "b_f1", f1, policy=b_pol, reference=ref),
  }


def test_pooled_folds_compare_over_all_questions_and_write_rows(folds, tmp_path):
  out = tmp_path / "results" / "pooled.json"
  text = compare.run(
      [f"{folds['a_f0']},{folds['a_f1']}", f"{folds['b_f0']},{folds['b_f1']}", "--resamples=500", f"--out={out}"]
  )
  # Per fold A - B on EM: +1 on questions 10-14, 0 elsewhere: 5 of 20; pooled 10 of 40 -> +25.00.
  assert "paired over the 40 questions both evaluated" in text and "EM  +25.00" in text
  assert "2 runs pooled" in text and "mde " in text and f"wrote {out}" in text
  saved = json.loads(out.read_text())
  assert saved["questions"] == {"a": 40, "b": 40, "common": 40}
  assert saved["em"]["n"] == 40 and saved["em"]["diff"] == pytest.approx(25.0)
  # d is 1 on 10 of 40 questions: sd = sqrt(40 * 0.25 * 0.75 / 39), mde80 = 2.801585 sd / sqrt(40) (x100).
  assert saved["em"]["mde80"] == pytest.approx(
      100 * 2.801585 * math.sqrt(40 * 0.25 * 0.75 / 39) / math.sqrt(40), rel=1e-5
  )
  assert saved["f1"]["diff"] == pytest.approx(12.5)
  assert [r["qid"] for r in saved["per_query"]["a"]] == [f"q{i}" for i in range(40)]
  assert {r["run"] for r in saved["per_query"]["b"][:20]} == {saved["b"]["runs"][0]}
  assert saved["a"]["system"] == saved["b"]["system"] == "policy" and len(saved["a"]["runs"]) == 2
  # The same comparison as stats.compare_rows over the concatenated rows: the pooling is a concatenation.
  direct = stats.compare_rows(saved["per_query"]["a"], saved["per_query"]["b"], resamples=500)
  assert direct["em"] == saved["em"] and direct["f1"] == saved["f1"]
  # One fold alone sees half the questions: its interval is wider than the pooled one.
  one = json.loads(compare.run([folds["a_f0"], folds["b_f0"], "--json", "--resamples=500"]))
  assert one["em"]["n"] == 20 and one["em"]["mde80"] > saved["em"]["mde80"]


def test_two_systems_of_the_same_runs(folds, tmp_path):
  runs = f"{folds['a_f0']},{folds['a_f1']}"
  out = tmp_path / "pr.json"
  text = compare.run([runs, "--systems=policy:reference", "--resamples=500", f"--out={out}"])
  # policy right on questions 0-14 of each fold, reference on 0-4: +10 of 20 per fold -> +50.00.
  assert "A = policy in 2 runs pooled" in text and "B = reference in 2 runs pooled" in text
  assert "EM  +50.00" in text and "paired over the 40 questions" in text
  saved = json.loads(out.read_text())
  assert saved["a"]["runs"] == saved["b"]["runs"] and saved["b"]["system"] == "reference"
  vs_retriever = json.loads(compare.run([runs, "--systems=policy:retriever", "--json", "--resamples=500"]))
  assert vs_retriever["em"]["diff"] == pytest.approx(75.0)
  with pytest.raises(compare.CompareError, match="name two systems"):
    compare.run([runs])  # policy vs policy of the same runs: nothing to compare
  with pytest.raises(compare.CompareError, match="SYSTEM_A:SYSTEM_B"):
    compare.run([runs, "--systems=policy"])


def test_folds_sharing_questions_are_refused_naming_the_runs(folds, tmp_path):
  overlap = _run(tmp_path / "a_f1_bad", [f"q{i}" for i in range(15, 35)], policy=[1] * 20, reference=[0] * 20)
  with pytest.raises(compare.CompareError, match=r"a_f0.*and .*a_f1_bad.* share 5 questions \(e.g. 'q15'\)"):
    compare.run([f"{folds['a_f0']},{overlap}", f"{folds['b_f0']},{folds['b_f1']}"])
  with pytest.raises(compare.CompareError, match="share 20 questions"):
    compare.run([f"{folds['a_f0']},{folds['a_f0']}", folds["b_f0"]])  # the same fold twice
  with pytest.raises(SystemExit) as e:
    compare.main([f"{folds['a_f0']},{overlap}", folds["b_f0"]])
  assert e.value.code == 2


def test_sides_covering_different_questions_report_the_counts(folds):
  text = compare.run([f"{folds['a_f0']},{folds['a_f1']}", folds["b_f0"], "--resamples=500"])
  assert "paired over the 20 questions both evaluated (20 of A and 0 of B have no partner" in text
  assert "(40 questions)" in text and "(20 questions)" in text


def test_a_named_evaluation_reads_its_own_rows(folds, tmp_path):
  """results_transfer.json names its step; the rows are under eval/transfer/step_N/, not eval/step_N/."""
  run = pathlib.Path(folds["a_f0"])
  qids = [f"q{i}" for i in range(20)]
  rows = {"per_query": {"policy": _rows(qids, [1] * 20), "reference": _rows(qids, [0] * 20)}}
  paths.write_text(str(run / "eval" / "transfer" / "step_5" / "results.json"), json.dumps({"step": 5, **rows}))
  paths.write_text(str(run / "results_transfer.json"), json.dumps({"step": 5, "systems": {}}))
  out = json.loads(compare.run([str(run / "results_transfer.json"), "--systems=policy:reference", "--json"]))
  assert out["em"]["diff"] == pytest.approx(100.0) and out["a"]["path"].endswith("eval/transfer/step_5/results.json")
  assert json.loads(compare.run([folds["a_f0"], "--systems=policy:reference", "--json"]))["em"]["diff"] == 50.0
