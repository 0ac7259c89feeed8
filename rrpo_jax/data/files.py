"""Example files: read_examples (a file in a registered format -> validated Examples) and
write_examples (DPR-style JSON Lines, this package's own format).

A bad record raises DataError naming file, line (or record for JSON documents) and field, or is
skipped and counted with `skip_invalid=True`. Beyond what each adapter checks (data/formats.py),
a read checks what spans records or candidates: duplicate query ids, and one passage id used for
two different passages of a query.
"""

from __future__ import annotations

import gzip
import io
import json
import os

from rrpo_jax.data.errors import DataError, ReadReport, short
from rrpo_jax.data.example import Example
from rrpo_jax.data.fields import Record
from rrpo_jax.data.formats import FORMATS


def _check_passage_ids(ex: Example, r: Record, field: str) -> None:
  """Two different passages of one query (its list: `field`) under one id would share reader cache entries (the cache
  keys passages by id): an error. Exact repeats are harmless and kept."""
  first: dict[str, int] = {}
  for j, c in enumerate(ex.candidates):
    i = first.setdefault(c.pid, j)
    if i != j and (ex.candidates[i].title, ex.candidates[i].text) != (c.title, c.text):
      r.fail(
          f"{field}[{j}]",
          f"passage id {short(c.pid)} is also {field}[{i}], with a different text (the reader "
          "cache keys passages by id)",
      )


def read_examples(
    path: str | os.PathLike, *, format: str, skip_invalid: bool = False, require_candidates: bool | None = None
) -> tuple[list[Example], ReadReport]:
  """Reads a file in `format` (one of FORMATS) -> (examples, report).

  A bad record (malformed JSON, invalid UTF-8, missing field, non-string answer, empty candidate
  list, duplicate query id) raises DataError, or with `skip_invalid` is skipped and counted in the
  report. `require_candidates` (default: whether the format carries them) makes a record without
  candidates an error; False drops nothing but accepts question-only records.
  """
  if format not in FORMATS:
    raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
  path = os.fspath(path)
  fmt = FORMATS.get(format)
  if require_candidates is None:
    require_candidates = fmt.candidates
  parse = fmt.parse
  report = ReadReport(path)
  examples: list[Example] = []
  seen: dict[str, int] = {}
  unit, records = fmt.records(path)
  for n, obj in records:
    try:
      if isinstance(obj, DataError):
        raise obj
      r = Record(path, n, unit)
      ex = parse(obj, r)
      if require_candidates and not ex.candidates:
        r.fail("ctxs" if format == "dpr" else None, "no candidate passages (empty candidate list)")
      _check_passage_ids(ex, r, fmt.field)
      if ex.qid in seen:
        r.fail("id", f"duplicate query id {short(ex.qid)} (first at {unit} {seen[ex.qid]})")
      seen[ex.qid] = n
      examples.append(ex)
    except DataError as e:
      if not skip_invalid:
        raise
      report.skip(e)
  report.n_read = len(examples)
  return examples, report


def write_examples(path: str | os.PathLike, examples, *, with_candidates: bool | None = None) -> int:
  """Writes DPR-style JSON lines (gzip if the name ends in .gz), atomically; returns the count.

  `with_candidates=None` writes "ctxs" for examples that have candidates and leaves it out for
  question-only examples (so they read back as questions, not as an empty candidate list).
  """
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  n = 0
  opener = gzip.open if path.endswith(".gz") else open
  with opener(tmp, "wb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as f:
    for ex in examples:
      keep = bool(ex.candidates) if with_candidates is None else with_candidates
      f.write(json.dumps(ex.to_json(with_candidates=keep), ensure_ascii=False) + "\n")
      n += 1
  os.replace(tmp, path)
  return n
