"""A tensorflow-datasets builder storing Examples in array_record (no TensorFlow needed).

  builder = make_builder("nq", data_dir="~/tensorflow_datasets")      # a bundled sample, or
  builder = make_builder("mydata", files={"train": ("train.jsonl", "dpr")}, data_dir=...)
  builder.download_and_prepare()
  source = builder.as_data_source("train")    # random access: len(source), source[i] -> record
  loader = Loader(source, encode_fn, batch_size=..., n=...)   # records become Examples

Records come back in storage order, not file order: each keeps `index` (its position in the input)
and `qid`; in_source_order(source) restores file order. Once this module is imported,
tfds.data_source("rrpo_qa/nq", data_dir=...) also opens a prepared dataset.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import tensorflow_datasets as tfds

from rrpo_jax.data.example import Candidate, Example
from rrpo_jax.data.files import read_examples

_SAMPLE_FILES = {"nq": ("train", "dev", "test"), "hotpotqa": ("train", "dev")}


def to_record(ex: Example, index: int) -> dict[str, Any]:
  """An Example as a TFDS record (score None -> NaN, is_supporting None -> -1, meta as JSON)."""
  return {
      "index": index,
      "qid": ex.qid,
      "question": ex.question,
      "answers": list(ex.answers),
      "candidates": {
          "pid": [c.pid for c in ex.candidates],
          "title": [c.title for c in ex.candidates],
          "text": [c.text for c in ex.candidates],
          "score": [math.nan if c.score is None else c.score for c in ex.candidates],
          "has_answer": [c.has_answer for c in ex.candidates],
          "is_supporting": [-1 if c.is_supporting is None else int(c.is_supporting) for c in ex.candidates],
      },
      "meta": json.dumps(ex.meta, ensure_ascii=False, sort_keys=True),
  }


def _str(x) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def from_record(rec: dict[str, Any]) -> Example:
  """A TFDS record (as a data source returns it: text as bytes) back to an Example."""
  c = rec["candidates"]
  cands = [
      Candidate(
          _str(pid),
          _str(title),
          _str(text),
          None if np.isnan(score) else float(score),
          bool(has),
          None if sup < 0 else bool(sup),
      )
      for pid, title, text, score, has, sup in zip(
          c["pid"], c["title"], c["text"], c["score"], c["has_answer"], c["is_supporting"]
      )
  ]
  return Example(
      _str(rec["qid"]), _str(rec["question"]), [_str(a) for a in rec["answers"]], cands, json.loads(_str(rec["meta"]))
  )


class RrpoQaConfig(tfds.core.BuilderConfig):
  """`files`: split -> (path, format) of the input files; or `sample`: a bundled sample name."""

  def __init__(
      self,
      *,
      files: dict[str, tuple[str, str]] | None = None,
      sample: str | None = None,
      n: int = 20,
      skip_invalid: bool = False,
      **kwargs,
  ):
    super().__init__(**kwargs)
    self.files, self.sample, self.n, self.skip_invalid = files, sample, n, skip_invalid


class _NoPath:
  """A class attribute that is None: this builder downloads nothing, so it has no checksums file
  next to its code (tfds 4.9 would otherwise need importlib_resources to look for one)."""

  def __get__(self, obj, objtype=None):
    return None


class RrpoQa(tfds.core.GeneratorBasedBuilder):
  """QA examples with candidate passages (the rrpo_jax Example format)."""

  code_path = _NoPath()

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      RrpoQaConfig(name="nq", sample="nq", description="bundled NQ sample, BM25 top-20"),
      RrpoQaConfig(name="hotpotqa", sample="hotpotqa", description="bundled HotpotQA sample"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    return tfds.core.DatasetInfo(
        builder=self,
        description="Questions, gold answers and candidate passages with has_answer / is_supporting.",
        features=tfds.features.FeaturesDict(
            {
                "index": np.int64,
                "qid": text,
                "question": text,
                "answers": tfds.features.Sequence(text),
                "candidates": tfds.features.Sequence(
                    {
                        "pid": text,
                        "title": text,
                        "text": text,
                        "score": np.float32,
                        "has_answer": np.bool_,
                        "is_supporting": np.int8,
                    }
                ),
                "meta": text,
            }
        ),
        homepage="https://arxiv.org/abs/2604.02091",
    )

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.sample:
      from rrpo_jax.data.sample import sample_path

      files = {s: (sample_path(cfg.sample, s, n=cfg.n), "dpr") for s in _SAMPLE_FILES[cfg.sample]}
    else:
      files = cfg.files or {}
    if not files:
      raise ValueError("RrpoQaConfig needs `files` or `sample`")
    return {split: self._generate_examples(path, fmt) for split, (path, fmt) in files.items()}

  def _generate_examples(self, path, fmt):
    examples, report = read_examples(path, format=fmt, skip_invalid=self.builder_config.skip_invalid)
    if report.n_skipped:
      print(report.summary())
    for i, ex in enumerate(examples):
      yield ex.qid, to_record(ex, i)


def make_builder(
    name: str,
    *,
    data_dir: str,
    files: dict[str, tuple[str, str]] | None = None,
    n: int = 20,
    skip_invalid: bool = False,
) -> RrpoQa:
  """The array_record builder for a bundled sample ("nq", "hotpotqa") or for your `files`."""
  if files is None and name in _SAMPLE_FILES and n == 20:
    return RrpoQa(config=name, data_dir=data_dir, file_format="array_record")
  config = RrpoQaConfig(
      name=name, files=files, sample=None if files else name, n=n, skip_invalid=skip_invalid, version=RrpoQa.VERSION
  )
  return RrpoQa(config=config, data_dir=data_dir, file_format="array_record")


def data_source(name: str, split: str, *, data_dir: str, **kwargs) -> Sequence[dict]:
  """Prepares the dataset if needed and returns the split's random-access data source."""
  builder = make_builder(name, data_dir=data_dir, **kwargs)
  builder.download_and_prepare()
  return builder.as_data_source(split)


class in_source_order(Sequence):
  """A data source viewed in input-file order (reads every record's `index` once)."""

  def __init__(self, source: Sequence[dict]):
    self.source = source
    keys = np.empty(len(source), np.int64)
    for key in range(len(source)):
      keys[int(source[key]["index"])] = key
    self.keys = keys

  def __len__(self) -> int:
    return len(self.keys)

  def __getitem__(self, i):
    return self.source[int(self.keys[i])]
