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
          "folds": 0,
          "fold": 0,
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
  assert splits.check(d, "train") is None  # the training questions: a learnability check
  assert "report splits are dev+test" in splits.check(d, "trian")
  assert "val_size > 0" in splits.check(data_config(), "val")
  report = splits.load(d, "dev+test")
  val = splits.load(d, "val")
  train = splits.load(d, "train")
  assert len(report) == 400 and len(val) == 150 and len(train) == 2255 - 150
  ids = [set(e.qid for e in x) for x in (report, val, train)]
  assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
  assert splits.load(d, "val")[0].qid == val[0].qid  # the same questions every time


def test_fold_rule_by_hand():
  # sha256: "c" 2e7d2c03..., "b" 3e23e816..., "a" ca978112...: sorted c, b, a -> folds 0, 1, 0.
  assert splits.fold_of(["a", "b", "c"], 2) == [0, 1, 0]
  assert splits.fold_of(["c", "a", "b"], 2) == [0, 0, 1]  # a qid's fold does not depend on the order
  assert splits.fold_of(["a", "b", "c"], 3) == [2, 1, 0]
  qids = [f"q{i}" for i in range(101)]
  of = splits.fold_of(qids, 2)
  assert sorted([of.count(0), of.count(1)]) == [50, 51]  # balanced to within 1
  assert of == splits.fold_of(qids, 2)


def fold_config(sample, fold, **kw):
  val = {"nq": 150, "hotpotqa": 50}[sample]
  return data_config(sample=sample, val_size=val, folds=2, fold=fold, eval_split=splits.HELDOUT, **kw)


@pytest.mark.parametrize("sample,sizes", [("nq", (1253, 1252)), ("hotpotqa", (150, 150))])
def test_cross_fitting_folds_cover_the_sample_minus_val(sample, sizes):
  # nq: 2,255 - 150 (val) + 200 dev + 200 test = 2,505 = 1,253 + 1,252; hotpotqa: 250 - 50 + 100 = 300.
  f0, f1 = fold_config(sample, 0), fold_config(sample, 1)
  train0, held0 = splits.load(f0, "train"), splits.load(f0, splits.HELDOUT)
  train1, held1 = splits.load(f1, "train"), splits.load(f1, splits.HELDOUT)
  val = splits.load(f0, "val")
  assert (len(train0), len(train1)) == sizes
  ids = lambda exs: {e.qid for e in exs}  # noqa: E731
  assert ids(held0) == ids(train1) and ids(held1) == ids(train0) and not ids(train0) & ids(train1)
  assert not (ids(train0) | ids(train1)) & ids(val) and ids(val) == ids(
      splits.load(data_config(sample=sample, val_size=f0.val_size), "val")
  )
  every = ids(splits.load(data_config(sample=sample), "train")) | {
      e.qid for part in splits.SPLITS[sample] if part != "train" for e in splits.load(data_config(sample=sample), part)
  }
  assert ids(train0) | ids(train1) | ids(val) == every  # each question is in exactly one of fold 0, fold 1, val
  assert [e.qid for e in splits.load(fold_config(sample, 0, max_train_queries=7), "train")] == [
      e.qid for e in train0[:7]
  ]
  assert len(splits.load(fold_config(sample, 0, max_eval_queries=9), splits.HELDOUT)) == 9


def test_fold_splits_are_checked_naming_the_field():
  assert splits.check(fold_config("nq", 0), splits.HELDOUT) is None
  assert "use 'heldout'" in splits.check(fold_config("nq", 0), "dev")  # dev is inside the folds now
  assert "needs data.folds=2" in splits.check(data_config(), splits.HELDOUT)
  assert splits.check_folds(fold_config("nq", 1)) is None
  assert splits.check_folds(fold_config("nq", 2))[0] == "data.fold"
  assert splits.check_folds(data_config(folds=1))[0] == "data.folds"
  assert splits.check_folds(data_config(folds=3))[0] == "data.folds"  # each question would be held out twice
  assert splits.check_folds(fold_config("nq", 0, train_path="x.jsonl"))[0] == "data.folds"
  with pytest.raises(DataError, match="needs data.folds=2"):
    splits.load(data_config(), splits.HELDOUT)
  with pytest.raises(DataError, match=r"data\.fold\b"):
    splits.load(fold_config("nq", 3), "train")


@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"data.folds": 2}, "data.eval_split"),  # eval_split "dev" is inside the folds
        ({"data.folds": 1}, "data.folds"),
        ({"data.folds": 2, "data.fold": 2, "data.eval_split": "heldout"}, "data.fold"),
        ({"data.eval_split": "heldout"}, "data.eval_split"),  # folds off
        ({"data.folds": 2, "data.eval_split": "heldout", "eval.select_split": "dev"}, "eval.select_split"),
    ],
)
def test_config_validation_names_the_fold_fields(overrides, named):
  from rrpo_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from rrpo_jax.config import validation as config_validation

  c = config_lib.get_config()
  for field, value in overrides.items():
    section, key = field.split(".")
    c[section][key] = value
  with pytest.raises(config_validation.ConfigError, match=rf"config\.{named}: "):
    config_validation.validate(c, num_devices=1)
  c = config_lib.get_config()
  c.data.update(folds=2, fold=1, eval_split="heldout", val_size=150)
  c.eval.select_split = "val"
  assert config_validation.validate(c, num_devices=1)
