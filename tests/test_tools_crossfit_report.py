"""tools/crossfit_report.py: the cross-fitted experiment's pooled comparisons, on written fold runs."""

import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from rrpo_jax.core import stats

TOOL = pathlib.Path(__file__).parents[1] / "tools" / "crossfit_report.py"
FOLD_QIDS = ([f"q{i}" for i in range(20)], [f"q{i}" for i in range(20, 40)])


def _tool():
  spec = importlib.util.spec_from_file_location("crossfit_report", TOOL)
  mod = importlib.util.module_from_spec(spec)
  sys.modules["crossfit_report"] = mod  # its dataclasses look their module up
  spec.loader.exec_module(mod)
  return mod


def _rows(qids, f1):
  return [{"qid": q, "em": float(v == 1.0), "f1": float(v), "hit": float(v > 0), "q": 0.5} for q, v in zip(qids, f1)]


def _run(root, name, qids, systems, *, results="results.json", step=7):
  """A workdir whose results file names step 7 and whose rows sit where the trainer writes them."""
  d = root / name
  where = d / "eval" / results[len("results_") : -len(".json")] if results != "results.json" else d / "eval"
  (where / f"step_{step}").mkdir(parents=True, exist_ok=True)
  per_query = {s: _rows(qids, v) for s, v in systems.items()}
  (where / f"step_{step}" / "results.json").write_text(json.dumps({"step": step, "k": 3, "per_query": per_query}))
  (d / results).write_text(json.dumps({"step": step, "k": 3, "systems": {}}))


def _metrics(root, name, steps=6):
  """metrics.jsonl of an RRPO run: step s has reward 0.1 s, value 0.3, F1 parts 0.01 s and 0.03; a
  resume redid step 2 (its first row, reward 9, does not count); an eval row is not a training step."""
  row = lambda s, reward: {  # noqa: E731
      "phase": "rrpo",
      "step": s,
      "reward": reward,
      "value": 0.3,
      "reward_f1": 0.01 * s,
      "value_f1": 0.03,
      "reward_eq_value_frac": 0.5 if s <= 3 else 0.25,
      "kl": 0.01 * s,
      "entropy": 1.0,
  }
  rows = [row(2, 9.0)] + [row(s, 0.1 * s) for s in range(1, steps + 1)] + [{"phase": "eval", "step": steps}]
  (root / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def runs(tmp_path):
  """Seed 0 on both folds (with transfer), seed 1 on fold 0 only, the reader warm-ups on both folds.
  Per fold: the policy's F1 is 1 on 12 questions, the reference's on 8 (the same 8), BM25's on 10."""
  pol, ref, bm25 = [1.0] * 12 + [0.0] * 8, [1.0] * 8 + [0.0] * 12, [0.0] * 10 + [1.0] * 10
  for f, qids in enumerate(FOLD_QIDS):
    _run(tmp_path, f"nq_cf_rrpo_s0_f{f}", qids, {"policy": pol, "reference": ref, "retriever": bm25})
    _metrics(tmp_path, f"nq_cf_rrpo_s0_f{f}")
    transfer = {"policy": [0.5] * 20, "reference": [0.25] * 20}
    _run(tmp_path, f"nq_cf_rrpo_s0_f{f}", qids, transfer, results="results_transfer.json")
    _run(tmp_path, f"nq_cf_sft_reader_f{f}", qids, {"reference": [1.0] * 10 + [0.0] * 10})
  _run(tmp_path, "nq_cf_rrpo_s1_f0", FOLD_QIDS[0], {"policy": pol, "reference": ref, "retriever": bm25})
  _metrics(tmp_path, "nq_cf_rrpo_s1_f0")
  return tmp_path


def test_pooled_comparisons_targets_and_missing_runs(runs, tmp_path):
  out = tmp_path / "results"
  text, failed = _tool().report(str(runs), "nq_cf", "paper", str(out), resamples=300)
  assert not failed
  saved = json.loads((out / "pooled.json").read_text())
  by_name = {c["name"]: c for c in saved["comparisons"]}
  primary = by_name["RRPO s0 - its initialisation"]
  # 4 of 20 questions per fold gain 1.0 F1: pooled +20.00 over 40 questions, the same on each fold.
  assert primary["questions"]["common"] == 40 and primary["f1"]["diff"] == pytest.approx(20.0)
  assert [f["f1"]["diff"] for f in primary["folds"]] == pytest.approx([20.0, 20.0])
  assert [f["n"] for f in primary["folds"]] == [20, 20]
  assert primary["target"] == {"kind": "primary", "verdict": "met"} and "q" in primary
  assert primary["a"]["mean"]["f1"] == pytest.approx(60.0) and primary["b"]["mean"]["f1"] == pytest.approx(40.0)
  direct = stats.compare_rows(
      [r for f in FOLD_QIDS for r in _rows(f, [1.0] * 12 + [0.0] * 8)],
      [r for f in FOLD_QIDS for r in _rows(f, [1.0] * 8 + [0.0] * 12)],
      metrics=("em", "f1", "hit", "q"),
      resamples=300,
  )
  assert primary["f1"] == direct["f1"] and primary["em"] == direct["em"]
  # the pooled per-question rows reproduce the pooled difference and name each question's fold run
  with open(out / "pooled_rows.csv", encoding="utf-8") as f:
    pairs = [r for r in csv.DictReader(f) if r["comparison"] == "RRPO s0 - its initialisation"]
  assert len(pairs) == 40 and len({p["qid"] for p in pairs}) == 40
  assert 100 * sum(float(p["a_f1"]) - float(p["b_f1"]) for p in pairs) / 40 == pytest.approx(20.0)
  assert {p["run_a"] for p in pairs} == {f"nq_cf_rrpo_s0_f{f}" for f in (0, 1)}
  assert all(p["run_a"] == p["run_b"] for p in pairs)
  # RRPO - BM25 order: 12 vs 10 per fold, different questions: +10.00.
  assert by_name["RRPO s0 - BM25 order"]["f1"]["diff"] == pytest.approx(10.0)
  # the reader warm-up's rows against the RRPO runs' BM25 rows (its runs evaluate the reference only)
  assert by_name["reader-preference warm-up - BM25 order"]["f1"]["diff"] == pytest.approx(0.0)
  assert by_name["RRPO s0 - reader-preference warm-up"]["f1"]["diff"] == pytest.approx(10.0)
  # transfer: the rows of eval/transfer/step_7, not the training reader's
  transfer = by_name["transfer (SmolLM2-135M): RRPO s0 - its initialisation"]
  assert transfer["f1"]["diff"] == pytest.approx(25.0) and transfer["target"]["verdict"] == "met"
  assert all("/eval/transfer/step_7/" in f for f in transfer["a"]["files"])
  # files are named relative to the runs folder: the report carries no machine's paths
  assert transfer["a"]["files"][0].startswith("nq_cf_rrpo_s0_f0/") and not os.path.isabs(transfer["a"]["files"][0])
  # seed 1 has one fold: waiting, not compared on half the questions
  assert "RRPO s1 - its initialisation" not in by_name
  assert any("nq_cf_rrpo_s1_f1/results.json" in m for m in saved["missing"])
  assert "Not yet evaluated:" in text and "| RRPO s0 - its initialisation | 40 |" in text and "| met |" in text
  assert (out / "nq_cf_rrpo_s0_f1_rows.json").is_file() and (out / "nq_cf_rrpo_s0_f1_transfer_rows.json").is_file()
  assert (out / "pooled.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # training: every finished RRPO run (s1 f0 too), halves of steps 1-3 and 4-6, the resumed row of step 2
  assert sorted(saved["training"]) == ["nq_cf_rrpo_s0_f0", "nq_cf_rrpo_s0_f1", "nq_cf_rrpo_s1_f0"]
  t = saved["training"]["nq_cf_rrpo_s0_f0"]
  assert t["steps"] == [[1, 3], [4, 6]] and [h["n"] for h in t["halves"]] == [3, 3]
  first, second = t["halves"]
  assert first["reward_minus_value"] == pytest.approx([-0.1, 0.1 / 3**0.5])  # rewards 0.1, 0.2, 0.3 - 0.3
  assert second["reward_minus_value"][0] == pytest.approx(0.2) and second["f1_minus_value_f1"][0] == pytest.approx(0.02)
  assert (first["tied"], second["tied"]) == (0.5, 0.25) and second["kl"] == pytest.approx(0.05)
  assert "| nq_cf_rrpo_s0_f0 | 1-3 / 4-6 | -0.100 +- 0.058 / +0.200 +- 0.058 | -0.010 / +0.020 | 50% / 25% |" in text
  assert (out / "nq_cf_rrpo_s0_f1_metrics.jsonl").read_text() == (
      runs / "nq_cf_rrpo_s0_f1" / "metrics.jsonl"
  ).read_text()


def test_targets_not_met():
  tool = _tool()
  c = lambda diff, lo, hi: {"f1": {"diff": diff, "ci95": [lo, hi]}}  # noqa: E731
  assert tool.verdict(c(0.9, 0.1, 1.7), "primary") == "not met"  # above 0 but under +1.0
  assert tool.verdict(c(1.4, -0.2, 3.0), "primary") == "not met"  # interval includes 0
  assert tool.verdict(c(-0.5, -1.9, -0.1), "not_below_0") == "not met"
  assert tool.verdict(c(-0.5, -1.9, 0.8), "not_below_0") == "met"
  assert tool.verdict(c(3.0, 1.0, 5.0), "") is None


def test_reward_choice_picks_the_runs_and_bad_files_are_named(runs, tmp_path):
  (runs / "nq_cf_reward_choice.json").write_text(json.dumps({"reward": "ll"}))
  text, _ = _tool().report(str(runs), "nq_cf", "auto", None, resamples=100)
  assert "reward: ll" in text and "nq_cf_rrpo_s0_f0_ll/results.json" in text  # the _ll runs do not exist yet
  # a fold file without the system a comparison needs: listed with the file, exit status 2
  (runs / "nq_cf_reward_choice.json").unlink()
  rows = runs / "nq_cf_sft_reader_f1" / "eval" / "step_7" / "results.json"
  rows.write_text(json.dumps({"step": 7, "per_query": {"policy": []}}))
  p = subprocess.run(
      [sys.executable, str(TOOL), f"--runs={runs}", "--resamples=100"], capture_output=True, text=True, check=False
  )
  assert p.returncode == 2 and "reward_choice.json: missing" in p.stderr
  p = subprocess.run(
      [sys.executable, str(TOOL), f"--runs={runs}", "--reward=paper", "--resamples=100"],
      capture_output=True,
      text=True,
      check=False,
  )
  assert p.returncode == 2, p.stderr
  assert "Cannot compare" in p.stdout and f"{rows}: field 'per_query.reference': missing" in p.stdout
  # a finished RRPO run without its training metrics is named too
  (runs / "nq_cf_rrpo_s1_f0" / "metrics.jsonl").unlink()
  text, failed = _tool().report(str(runs), "nq_cf", "paper", None, resamples=100)
  assert failed and f"training of nq_cf_rrpo_s1_f0: {runs / 'nq_cf_rrpo_s1_f0' / 'metrics.jsonl'}: missing" in text


def test_a_comparison_over_part_of_a_side_says_so():
  c = {"f1": {"diff": 1.0, "ci95": [0.0, 2.0], "p": 0.04, "mde80": 1.1, "differ": 0.1}, "folds": []}
  c = {"name": "x", "em": c["f1"], **c, "questions": {"a": 40, "b": 30, "common": 30}}
  assert "| x | 30 (of 40 / 30) |" in _tool().table([c])[2]
