"""Which examples each phase uses: train, validation (selection) and report splits.

Honest evaluation chooses checkpoints and hyper-parameters on one split and reports on another:
  "train"   the training file (data.train_path, else the sample's train split) without its last
            data.val_size examples, then cut to data.max_train_queries;
  "val"     the last data.val_size examples of the training file: periodic evaluation during RRPO
            and best-checkpoint selection (eval.select_split);
  report    data.eval_split: for the bundled sample one of its splits or several joined by "+"
            ("dev", "test", "dev+test"), or "val"; with data.eval_path set, "eval" (that file).
Sample splits are shuffled once when the sample is made, so the last val_size training examples
are a random subset. Every split's candidates are cut to data.num_candidates.
"""

from __future__ import annotations

import sys

from rrpo_jax.data.errors import DataError
from rrpo_jax.data.files import read_examples
from rrpo_jax.data.sample import SPLITS, sample_path


def names(split: str) -> list[str]:
  """ "dev+test" -> ["dev", "test"]."""
  return [s.strip() for s in str(split).split("+") if s.strip()]


def check(data_config, split: str) -> str | None:
  """None if `split` is a valid report/selection split for this data config, else why not."""
  d = data_config
  parts = names(split)
  if not parts:
    return f"must name a split, got {split!r}"
  if parts == ["val"]:
    return None if d.val_size > 0 else "'val' needs data.val_size > 0 (the held-out part of the training file)"
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


def load(data_config, split: str) -> list:
  """The examples of `split` ("train", "val", or a report split; see the module docstring)."""
  d = data_config
  if split in ("train", "val"):
    examples = _train_file(d)
    if d.val_size >= len(examples):
      raise DataError(
          d.train_path or f"the {d.sample} sample",
          None,
          "data.val_size",
          f"{d.val_size} >= the {len(examples)} training examples",
      )
    cut = len(examples) - d.val_size
    examples = examples[:cut] if split == "train" else examples[cut:]
    if split == "train" and d.max_train_queries:
      examples = examples[: d.max_train_queries]
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
