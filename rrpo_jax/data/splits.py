"""Which examples each phase uses: train, validation (selection) and report splits.

Honest evaluation chooses checkpoints and hyper-parameters on one split and reports on another:
  "train"   the training file (data.train_path, else the sample's train split) without its last
            data.val_size examples, then cut to data.max_train_queries;
  "val"     the last data.val_size examples of the training file: periodic evaluation during RRPO
            and best-checkpoint selection (eval.select_split);
  report    data.eval_split: for the bundled sample one of its splits or several joined by "+"
            ("dev", "test", "dev+test"), or "val"; with data.eval_path set, "eval" (that file);
            "train" evaluates on the training questions themselves (a learnability check: can the
            method fit what it trains on), never a report.
Cross-fitting (data.folds = 2, the bundled sample only): every question of the sample except
"val" (the training split minus its last val_size, then every report split: NQ's 2,105 + 200 +
200 = 2,505 with val_size 150, HotpotQA's 200 + 100 = 300 with val_size 50) is dealt into two
fixed folds by `fold_of`: sorted by sha256(qid) (hex digest, then qid), the i-th goes to fold
i mod 2, so the folds differ in size by at most 1 and depend on nothing but the qids in the pool.
Then
  "train"   the questions of fold data.fold (in the sample's order), cut to data.max_train_queries;
  "heldout" the questions of the other fold: the report split (data.eval_split="heldout"), cut to
            data.max_eval_queries (0 reports the whole fold);
  "val"     unchanged.
Run once per fold and pool the heldout rows (python -m rrpo_jax.compare A_f0,A_f1 B_f0,B_f1): every
question is reported once by a model that never trained on it. The sample's own report splits
(dev, test) are in the folds and cannot be reported on then.
Sample splits are shuffled once when the sample is made, so the last val_size training examples
are a random subset. Every split's candidates are cut to data.num_candidates.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Sequence

from rrpo_jax.data.errors import DataError
from rrpo_jax.data.files import read_examples
from rrpo_jax.data.sample import SPLITS, sample_path


def names(split: str) -> list[str]:
  """ "dev+test" -> ["dev", "test"]."""
  return [s.strip() for s in str(split).split("+") if s.strip()]


HELDOUT = "heldout"


def fold_of(qids: Sequence[str], folds: int) -> list[int]:
  """The fold (0..folds-1) of each qid: sorted by (sha256(qid) hex digest, qid), the i-th in that
  order goes to fold i mod folds. Fixed by the set of qids; fold sizes differ by at most 1."""
  order = sorted(range(len(qids)), key=lambda i: (hashlib.sha256(str(qids[i]).encode()).hexdigest(), str(qids[i])))
  out = [0] * len(qids)
  for rank, i in enumerate(order):
    out[i] = rank % folds
  return out


def _folds(d) -> int:
  return int(d.get("folds", 0) or 0)


def check_folds(data_config) -> tuple[str, str] | None:
  """None if data.folds / data.fold are usable, else (field, why not)."""
  d = data_config
  folds, fold = d.get("folds", 0), d.get("fold", 0)
  if not isinstance(folds, int) or isinstance(folds, bool) or folds not in (0, 2):
    # more folds would hold each question out in several runs (train on one, report on the rest)
    return "data.folds", f"must be 0 (off) or 2 (two-fold cross-fitting), got {folds!r}"
  if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < max(folds, 1):
    return "data.fold", f"must be in [0, data.folds) = [0, {max(folds, 1)}), got {fold!r}"
  if folds and (d.train_path or d.eval_path):
    return "data.folds", "cross-fitting folds split the bundled sample: data.train_path and data.eval_path must be ''"
  return None


def check(data_config, split: str) -> str | None:
  """None if `split` is a valid report/selection split for this data config, else why not."""
  d = data_config
  parts = names(split)
  if not parts:
    return f"must name a split, got {split!r}"
  if parts == ["val"]:
    return None if d.val_size > 0 else "'val' needs data.val_size > 0 (the held-out part of the training file)"
  if parts == ["train"]:
    return None  # the training questions themselves: a learnability check, never a report
  if _folds(d):
    if parts == [HELDOUT]:
      return None
    return (
        f"with data.folds={_folds(d)} the sample's report splits are in the folds: use '{HELDOUT}' (the folds "
        f"other than data.fold) or 'val', got {split!r}"
    )
  if HELDOUT in parts:
    return f"'{HELDOUT}' needs data.folds=2 (cross-fitting), got data.folds={_folds(d)}"
  if d.eval_path:
    return None if parts == ["eval"] else f"with data.eval_path set use 'eval' or 'val', got {split!r}"
  allowed = [s for s in SPLITS.get(d.sample, ()) if s != "train"]
  bad = [p for p in parts if p not in allowed]
  if bad:
    return f"the {d.sample} sample's report splits are {'+'.join(allowed)} (or 'val'), got {split!r}"
  return None


def _read(data_config, path: str, fmt: str, what: str) -> list:
  # Training and evaluation need candidates: a question-only record is an error naming its line
  # (or is skipped and counted under data.skip_invalid), never silently dropped.
  examples, report = read_examples(path, format=fmt, skip_invalid=data_config.skip_invalid, require_candidates=True)
  if report.n_skipped:
    print(f"{report.summary()} (data.skip_invalid; {what})", file=sys.stderr, flush=True)
  return examples


def _train_file(d) -> list:
  if d.train_path:
    return _read(d, d.train_path, d.format, "train")
  return _read(d, sample_path(d.sample, "train", n=max(d.num_candidates, 20)), "dpr", "train")


def _fold_pool(d, train: list) -> list:
  """Cross-fitting: the sample's questions outside "val" (`train`: the training split without it),
  then each report split's, in the sample's order."""
  report = [
      ex
      for part in SPLITS[d.sample]
      if part != "train"
      for ex in _read(d, sample_path(d.sample, part, n=max(d.num_candidates, 20)), "dpr", part)
  ]
  return train + report


def load(data_config, split: str) -> list:
  """The examples of `split` ("train", "val", "heldout", or a report split; see the module docstring)."""
  d = data_config
  folds = _folds(d)
  if split in ("train", "val") or (folds and split == HELDOUT):
    problem = check_folds(d)
    if problem:
      raise DataError(problem[0], None, None, problem[1])
    examples = _train_file(d)
    if d.val_size >= len(examples):
      raise DataError(
          d.train_path or f"the {d.sample} sample",
          None,
          "data.val_size",
          f"{d.val_size} >= the {len(examples)} training examples",
      )
    cut = len(examples) - d.val_size
    if split == "val":
      examples = examples[cut:]
    elif folds:
      pool = _fold_pool(d, examples[:cut])
      examples = [
          ex for ex, f in zip(pool, fold_of([ex.qid for ex in pool], folds)) if (f == d.fold) == (split == "train")
      ]
    else:
      examples = examples[:cut]
    if split == "train" and d.max_train_queries:
      examples = examples[: d.max_train_queries]
    if split == HELDOUT and d.max_eval_queries:
      examples = examples[: d.max_eval_queries]
  else:
    why = check(d, split)
    if why:
      raise DataError("data.eval_split", None, None, why)
    if d.eval_path:
      examples = _read(d, d.eval_path, d.format, split)
    else:
      examples = [
          ex
          for part in names(split)
          for ex in _read(d, sample_path(d.sample, part, n=max(d.num_candidates, 20)), "dpr", part)
      ]
    if d.max_eval_queries:
      examples = examples[: d.max_eval_queries]
  for ex in examples:
    ex.candidates = list(ex.candidates[: d.num_candidates])
  if not examples:
    raise DataError(
        d.train_path if split == "train" else d.eval_path or split, None, None, f"no usable {split} examples"
    )
  return examples
