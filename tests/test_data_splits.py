"""Train / validation / report splits (rrpo_jax.data.splits): disjoint, stable, named errors."""

import ml_collections
import pytest

from rrpo_jax.data import DataError, splits, write_examples
from rrpo_jax.data.example import Candidate, Example


def data_config(**kw):
  c = ml_collections.ConfigDict(
      {
          "sample": "nq",
          "train_path": "",
          "eval_path": "",
          "format": "dpr",
          "skip_invalid": False,
          "num_candidates": 4,
          "max_train_queries": 0,
          "max_eval_queries": 0,
          "val_size": 0,
          "eval_split": "dev",
      }
  )
  c.update(kw)
  return c


def write(path, qids):
  write_examples(
      path,
      [
          Example(q, f"question {q}?", ["a"], [Candidate(f"{q}-{j}", "t", "text a", None, True) for j in range(6)])
          for q in qids
      ],
  )
  return str(path)


def test_val_is_carved_from_the_end_of_train(tmp_path):
  train = write(tmp_path / "train.jsonl", [f"t{i}" for i in range(10)])
  evals = write(tmp_path / "dev.jsonl", ["d0", "d1"])
  d = data_config(train_path=train, eval_path=evals, val_size=3, max_train_queries=4, eval_split="eval")
  tr, val, ev = splits.load(d, "train"), splits.load(d, "val"), splits.load(d, "eval")
  assert [e.qid for e in val] == ["t7", "t8", "t9"]
  assert [e.qid for e in tr] == ["t0", "t1", "t2", "t3"]  # max_train_queries applies after the carve
  assert [e.qid for e in ev] == ["d0", "d1"]
  assert all(len(e.candidates) == 4 for e in tr + val + ev)
  assert splits.check(d, "dev") and splits.check(d, "val") is None
  with pytest.raises(DataError, match=r"data.val_size.*10 >= the 10 training"):
    splits.load(data_config(train_path=train, val_size=10), "val")


def test_sample_report_splits_join_and_stay_disjoint_from_val():
  d = data_config(val_size=150, eval_split="dev+test")
  assert splits.check(d, "dev+test") is None and splits.check(d, "val") is None
  assert "report splits are dev+test" in splits.check(d, "train")
  assert "val_size > 0" in splits.check(data_config(), "val")
  report = splits.load(d, "dev+test")
  val = splits.load(d, "val")
  train = splits.load(d, "train")
  assert len(report) == 400 and len(val) == 150 and len(train) == 2255 - 150
  ids = [set(e.qid for e in x) for x in (report, val, train)]
  assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
  assert splits.load(d, "val")[0].qid == val[0].qid  # the same questions every time
