"""Format adapters: public QA files -> Examples, and the DPR-style JSONL writer.

Every adapter validates its records; a bad one raises DataError naming file, line (or record for
JSON documents) and field, or is skipped and counted with `skip_invalid=True`. has_answer is always
recomputed with text.contains_answer (SQuAD-normalised, token-boundary containment), whatever
the file says, so that every format labels passages the same way. Files may be gzip-compressed.

Every JSON format reads both layouts the same datasets circulate in, told apart by the content (not
the file name): JSON Lines (one record per line; errors name the line) and one JSON list of records
(also {"data": [...]}; errors name the record, 1-based). A UTF-8 byte order mark is ignored.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import gzip
import io
import json
import math
import os
import re
import zlib
from typing import Any, Callable, Iterator

from rrpo_jax.data.errors import DataError, ReadReport
from rrpo_jax.data.example import LABELLER, Candidate, Example, candidate
from rrpo_jax.registry import Registry


class _Record:
  """Where a record came from, for error messages; `fail(field, message)` raises DataError."""

  def __init__(self, path: str, line: int, unit: str = "line"):
    self.path, self.line, self.unit = path, line, unit

  def fail(self, field: str | None, message: str):
    raise DataError(self.path, self.line, field, message, unit=self.unit)

  def get(self, obj: dict, key: str, field: str | None = None) -> Any:
    if key not in obj:
      self.fail(field or key, "missing required field")
    return obj[key]

  def string(self, value: Any, field: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
      self.fail(field, f"expected a string, got {type(value).__name__}")
    if not empty and not value.strip():
      self.fail(field, "empty string")
    return value

  def answers(self, value: Any, field: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list):
      self.fail(field, f"expected a list of strings, got {type(value).__name__}")
    for i, a in enumerate(value):
      if not isinstance(a, str):
        self.fail(f"{field}[{i}]", f"answer is not a string: {short(a)}")
    out = _unique(a for a in value if a.strip())
    if not out:
      self.fail(field, "no non-empty gold answer")
    return out

  def obj(self, value: Any, field: str | None) -> dict:
    if not isinstance(value, dict):
      self.fail(field, f"expected a JSON object, got {type(value).__name__}")
    return value

  def items(self, value: Any, field: str) -> list:
    if not isinstance(value, list):
      self.fail(field, f"expected a list, got {type(value).__name__}")
    if not value:
      self.fail(field, "empty candidate list")
    return value

  def qid(self, obj: dict, *keys: str) -> str:
    for key in keys:
      if key in obj:
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
          self.fail(key, f"query id must be a non-empty string or integer, got {short(value)}")
        return str(value)
    return str(self.line)


def _unique(items) -> list[str]:
  return list(dict.fromkeys(items))


_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a \\uD800-\\uDFFF escape: maybe an unpaired surrogate
_MAX_REPR = 60  # characters of a bad value quoted in a message


def short(value: Any) -> str:
  """repr(value), cut to _MAX_REPR characters: messages stay one short line whatever the data."""
  text = (
      repr(value)
      if not isinstance(value, (list, dict)) or len(value) < 100
      else f"<{type(value).__name__} of {len(value)} items>"
  )
  return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


class _Lines:
  """Lines of a possibly gzip-compressed file; a corrupt or truncated gzip stream raises DataError."""

  def __init__(self, path: str, f):
    self.path, self.f, self.n = path, f, 0

  def __iter__(self):
    while True:
      try:
        raw = self.f.readline()
      except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            self.path, self.n + 1, None, f"corrupt or truncated gzip data ({e}); the rest of the " "file is unreadable"
        ) from None
      if not raw:
        return
      self.n += 1
      yield self.n, raw

  def read(self) -> bytes:
    try:
      return self.f.read()
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(self.path, None, None, f"corrupt or truncated gzip data ({e})") from None


@contextlib.contextmanager
def open_lines(path: str):
  """A _Lines over a file, gunzipped when its content is gzip (told by the magic bytes, not the name)."""
  with open(path, "rb") as raw:
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
      with gzip.open(raw, "rb") as f:
        yield _Lines(path, f)
    else:
      yield _Lines(path, raw)


def _decode(path: str, line: int, data: bytes, unit: str = "line") -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise DataError(
        path, line, None, f"invalid UTF-8 at byte {e.start}: {data[e.start:e.start + 4]!r}", unit=unit
    ) from None


def _loads(text: str):
  """json.loads; every way it can fail (syntax, nesting depth, huge integers) is a ValueError."""
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    raise
  except (ValueError, RecursionError) as e:
    message = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(":")[0]
    raise ValueError(message) from None


def _unpaired_surrogate(obj: Any) -> str | None:
  """The field path of the first string holding an unpaired surrogate (unwritable as UTF-8), or None."""
  stack = [("", obj)]
  while stack:
    where, value = stack.pop()
    if isinstance(value, str):
      try:
        value.encode("utf-8")
      except UnicodeEncodeError:
        return where or "record"
    elif isinstance(value, dict):
      for key, sub in value.items():
        name = key if key.isprintable() and len(key) <= 40 else short(key)
        stack.append((where + "." + name if where else name, key))
        stack.append((where + "." + name if where else name, sub))
    elif isinstance(value, list):
      stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(value))
  return None


def _parse_json(path: str, n: int, text: str, unit: str, whole: bool = False) -> Any:
  """One JSON value -> object; raises DataError for malformed JSON and unpaired surrogates."""
  suffix = " (the whole JSON file is unreadable)" if whole else ""
  try:
    obj = _loads(text)
  except json.JSONDecodeError as e:
    raise DataError(
        path,
        e.lineno if whole else n,
        None,
        f"malformed JSON: {e.msg} at column {e.colno}{suffix}",
        unit="line" if whole else unit,
    ) from None
  except ValueError as e:
    raise DataError(path, None if whole else n, None, f"malformed JSON: {e}{suffix}", unit=unit) from None
  return obj


def _valid_unicode(path: str, n: int, obj: Any, unit: str) -> Any:
  """obj, or a DataError naming the first field whose string holds an unpaired surrogate."""
  field = _unpaired_surrogate(obj)
  if field is None:
    return obj
  return DataError(
      path,
      n,
      None if field == "record" else field,
      "string holds an unpaired UTF-16 surrogate escape (not valid Unicode)",
      unit=unit,
  )


def _json_lines(path: str) -> Iterator[tuple[int, Any]]:
  """(line number, parsed object or DataError) for every non-blank line."""
  with open_lines(path) as f:
    for n, raw in f:
      try:
        text = _decode(path, n, raw[3:] if n == 1 and raw.startswith(_BOM) else raw)
        if not text.strip():
          continue
        obj = _parse_json(path, n, text, "line")
        yield n, _valid_unicode(path, n, obj, "line") if _SURROGATE.search(text) else obj
      except DataError as e:
        yield n, e


def _json_document(path: str) -> Iterator[tuple[int, Any]]:
  """(record number, object) for each element of a JSON list; an unreadable file raises."""
  with open_lines(path) as f:
    data = f.read()
  if data.startswith(_BOM):
    data = data[3:]
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data[: e.start].count(b"\n") + 1
    raise DataError(
        path, line, None, f"invalid UTF-8 at byte {e.start} (the whole JSON file is " "unreadable)"
    ) from None
  doc = _parse_json(path, 0, text, "record", whole=True)
  if isinstance(doc, dict) and isinstance(doc.get("data"), list):  # {"data": [...]} wrappers
    doc = doc["data"]
  if isinstance(doc, dict):  # one record, pretty-printed over several lines
    doc = [doc]
  if not isinstance(doc, list):
    raise DataError(path, None, None, f"expected a JSON list of records, got {type(doc).__name__}")
  if _SURROGATE.search(text):
    doc = [_valid_unicode(path, n, obj, "record") for n, obj in enumerate(doc, 1)]
  yield from enumerate(doc, 1)


def _first_line(path: str) -> bytes:
  with open_lines(path) as f:
    for n, raw in f:
      raw = (raw[3:] if n == 1 and raw.startswith(_BOM) else raw).strip()
      if raw:
        return raw
  return b""


def _complete(line: bytes) -> bool:
  """Whether `line` is a complete JSON value, other than a {"data": [...]} wrapper written on one line."""
  try:
    value = _loads(line.decode("utf-8"))
  except (ValueError, UnicodeDecodeError):
    return False
  return not (isinstance(value, dict) and isinstance(value.get("data"), list))


def _json_records(path: str) -> tuple[str, Iterator[tuple[int, Any]]]:
  """(unit, records) of a JSON file in either layout, told apart by the content, not the name.

  A first line that is a complete JSON object means JSON Lines. Otherwise a file that parses as one
  JSON value is a document (a list of records, {"data": [...]}, or one pretty-printed record); a
  file starting with `[` that does not parse is a broken document, unless its first line is
  complete JSON (then JSON Lines, whose bad lines are reported or skipped one by one).
  """
  first = _first_line(path)
  if first[:1] not in (b"[", b"{") or (first[:1] == b"{" and _complete(first)):
    return "line", _json_lines(path)
  try:
    return "record", iter(list(_json_document(path)))
  except DataError:
    if first[:1] == b"{" or _complete(first):
      return "line", _json_lines(path)
    raise


def _tsv_rows(path: str) -> Iterator[tuple[int, Any]]:
  """(line number, list of columns or DataError) for a TSV with csv quoting, one row per line."""
  with open_lines(path) as f:
    for n, raw in f:
      try:
        text = _decode(path, n, raw[3:] if n == 1 and raw.startswith(_BOM) else raw).rstrip("\r\n")
        if not text.strip():
          continue
        try:
          row = next(csv.reader([text], delimiter="\t"))
        except csv.Error as e:
          raise DataError(path, n, None, f"unreadable TSV row: {e}") from None
        yield n, row
      except DataError as e:
        yield n, e


def _json(path: str) -> tuple[str, Iterator[tuple[int, Any]]]:
  return _json_records(path)


def _tsv(path: str) -> tuple[str, Iterator[tuple[int, Any]]]:
  return "line", _tsv_rows(path)


@dataclasses.dataclass(frozen=True)
class Format:
  """parse(record, _Record) -> Example; candidates: whether its records carry candidate passages;
  records(path) -> (unit, iterator of (line or record number, record or DataError))."""

  parse: Callable[[Any, _Record], Example]
  candidates: bool
  records: Callable[[str], tuple[str, Iterator[tuple[int, Any]]]] = _json


# data.format / --format names -> Format. A new format is one `@register_format` adapter below
# plus a test; the converter CLI, read_examples and config validation read this registry.
FORMATS: Registry[Format] = Registry("format")


def register_format(name: str, *, candidates: bool, records=_json):
  """Decorator: registers parse(record, _Record) -> Example as the format `name`."""

  def add(parse):
    FORMATS.register(name, Format(parse, candidates, records))
    return parse

  return add


# ---------------------------------------------------------------------------------------------
# Adapters: (record object, _Record) -> Example


@register_format("dpr", candidates=True)
def parse_dpr(obj: Any, r: _Record) -> Example:
  """DPR / FiD retrieval results, JSON list or JSON lines; e.g. a line of DPR's `dense_retriever.py`
  output: {"question": "who sings ...", "answers": ["..."], "ctxs": [{"id": "11828866",
  "title": "...", "text": "...", "score": "80.5", "has_answer": true}]}
  (github.com/facebookresearch/DPR, README "Retriever inference"). Also reads this package's own
  output (adds "id", "is_supporting", "meta", and "has_answer_by" when its has_answer labels come
  from text.contains_answer: those are kept, all others recomputed). A record without "ctxs" is
  a question only.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id", "qid", "question_id", "_id")
  question = r.string(r.get(obj, "question"), "question")
  answers = r.answers(r.get(obj, "answers"), "answers")
  candidates = []
  trusted = obj.get("has_answer_by") == LABELLER
  if "ctxs" in obj:
    for j, ctx in enumerate(r.items(obj["ctxs"], "ctxs")):
      f = f"ctxs[{j}]"
      ctx = r.obj(ctx, f)
      text = r.string(r.get(ctx, "text", f"{f}.text"), f"{f}.text", empty=True)
      title = r.string(ctx.get("title", ""), f"{f}.title", empty=True)
      pid = ctx.get("id", ctx.get("pid", f"{qid}#{j}"))
      if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        r.fail(f"{f}.id", f"passage id must be a string or integer, got {short(pid)}")
      score = ctx.get("score")
      if score is not None:
        try:
          score = float(score)
        except (TypeError, ValueError, OverflowError):
          r.fail(f"{f}.score", f"not a number: {short(score)}")
        if not math.isfinite(score):
          r.fail(f"{f}.score", f"not a finite number: {score}")
      sup = ctx.get("is_supporting")
      if sup is not None and not isinstance(sup, bool):
        r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
      has = ctx.get("has_answer")
      if trusted and isinstance(has, bool):
        candidates.append(Candidate(str(pid), title, text, score, has, sup))
      else:
        candidates.append(candidate(pid, title, text, answers, score=score, is_supporting=sup))
  meta = obj.get("meta", {})
  if not isinstance(meta, dict):
    r.fail("meta", "expected a JSON object")
  return Example(qid, question, answers, candidates, dict(meta))


@register_format("hotpotqa", candidates=True)
def parse_hotpotqa(obj: Any, r: _Record) -> Example:
  """HotpotQA original JSON (a list), distractor or fullwiki: {"_id", "question", "answer",
  "supporting_facts": [[title, sent_id]], "context": [[title, [sentences]]], "type", "level"}
  (hotpotqa.github.io, hotpot_dev_distractor_v1.json). A paragraph is the concatenation of its
  sentences; is_supporting = its title is in supporting_facts.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "_id", "id")
  question = r.string(r.get(obj, "question"), "question")
  answer = r.string(r.get(obj, "answer"), "answer")
  answers = r.answers([answer], "answer")
  facts = r.get(obj, "supporting_facts")
  if not isinstance(facts, list) or not all(isinstance(f, list) and f and isinstance(f[0], str) for f in facts):
    r.fail("supporting_facts", "expected a list of [title, sentence index]")
  gold = {f[0] for f in facts}
  candidates = []
  for j, para in enumerate(r.items(r.get(obj, "context"), "context")):
    f = f"context[{j}]"
    if not (isinstance(para, list) and len(para) == 2 and isinstance(para[1], list)):
      r.fail(f, "expected [title, [sentences]]")
    title = r.string(para[0], f"{f}[0]")
    for i, s in enumerate(para[1]):
      r.string(s, f"{f}[1][{i}]", empty=True)
    candidates.append(candidate(title, title, "".join(para[1]).strip(), answers, is_supporting=title in gold))
  meta = {k: obj[k] for k in ("type", "level") if k in obj}
  return Example(qid, question, answers, candidates, meta)


@register_format("hotpotqa_ircot", candidates=True)
def parse_hotpotqa_ircot(obj: Any, r: _Record) -> Example:
  """IRCoT processed JSON lines (github.com/StonyBrookNLP/ircot, processed_data/hotpotqa/*.jsonl):
  {"question_id", "question_text", "answers_objects": [{"number", "date", "spans": [str]}],
  "contexts": [{"id", "title", "paragraph_text", "is_supporting"}]}. Gold answers = all spans
  (and numbers) of all answer objects.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "question_id")
  question = r.string(r.get(obj, "question_text"), "question_text")
  objects = r.get(obj, "answers_objects")
  if not isinstance(objects, list):
    r.fail("answers_objects", "expected a list")
  raw = []
  for i, a in enumerate(objects):
    a = r.obj(a, f"answers_objects[{i}]")
    spans = a.get("spans", [])
    if not isinstance(spans, list):
      r.fail(f"answers_objects[{i}].spans", "expected a list of strings")
    for k, span in enumerate(spans):
      r.string(span, f"answers_objects[{i}].spans[{k}]", empty=True)
    raw.extend(spans)
    number = a.get("number")
    if isinstance(number, bool) or not isinstance(number, (str, int, float, type(None))):
      r.fail(f"answers_objects[{i}].number", f"expected a number or string, got {short(number)}")
    if number not in (None, ""):
      raw.append(str(number))
  answers = r.answers(raw, "answers_objects.spans")
  candidates = []
  for j, ctx in enumerate(r.items(r.get(obj, "contexts"), "contexts")):
    f = f"contexts[{j}]"
    ctx = r.obj(ctx, f)
    title = r.string(r.get(ctx, "title", f"{f}.title"), f"{f}.title", empty=True)
    text = r.string(r.get(ctx, "paragraph_text", f"{f}.paragraph_text"), f"{f}.paragraph_text", empty=True)
    sup = ctx.get("is_supporting")
    if sup is not None and not isinstance(sup, bool):
      r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
    candidates.append(candidate(title or f"{qid}#{j}", title, text, answers, is_supporting=sup))
  return Example(qid, question, answers, candidates, {})


@register_format("musique", candidates=True)
def parse_musique(obj: Any, r: _Record) -> Example:
  """MuSiQue JSON lines (github.com/StonyBrookNLP/musique, musique_ans_v1.0_dev.jsonl): {"id",
  "question", "answer", "answer_aliases": [str], "answerable", "paragraphs": [{"idx", "title",
  "paragraph_text", "is_supporting"}]}. Gold answers = answer + aliases.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id")
  question = r.string(r.get(obj, "question"), "question")
  answer = r.string(r.get(obj, "answer"), "answer", empty=True)
  aliases = obj.get("answer_aliases", [])
  if not isinstance(aliases, list):
    r.fail("answer_aliases", "expected a list of strings")
  for i, a in enumerate(aliases):
    if not isinstance(a, str):
      r.fail(f"answer_aliases[{i}]", f"answer is not a string: {short(a)}")
  answers = r.answers([answer, *aliases], "answer")
  candidates = []
  for j, p in enumerate(r.items(r.get(obj, "paragraphs"), "paragraphs")):
    f = f"paragraphs[{j}]"
    p = r.obj(p, f)
    title = r.string(p.get("title", ""), f"{f}.title", empty=True)
    text = r.string(r.get(p, "paragraph_text", f"{f}.paragraph_text"), f"{f}.paragraph_text", empty=True)
    sup = p.get("is_supporting")
    if sup is not None and not isinstance(sup, bool):
      r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
    idx = p.get("idx", j)
    if isinstance(idx, bool) or not isinstance(idx, (str, int)):
      r.fail(f"{f}.idx", f"paragraph index must be a string or integer, got {short(idx)}")
    candidates.append(candidate(f"{qid}#{idx}", title, text, answers, is_supporting=sup))
  meta = {"answerable": obj["answerable"]} if "answerable" in obj else {}
  return Example(qid, question, answers, candidates, meta)


@register_format("nq_open", candidates=False)
def parse_nq_open(obj: Any, r: _Record) -> Example:
  """NQ-open JSON lines (github.com/google-research-datasets/natural-questions, nq_open/
  NQ-open.dev.jsonl): {"question": "who ...", "answer": ["..."]}; an optional "id" is kept (else
  the line number), other extra fields go to meta. Questions only: candidates come from a retriever
  (python -m rrpo_jax.data.bm25).
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id", "qid")
  question = r.string(r.get(obj, "question"), "question")
  key = "answer" if "answer" in obj or "answers" not in obj else "answers"
  meta = {k: v for k, v in obj.items() if k not in ("question", key, "id", "qid")}
  return Example(qid, question, r.answers(r.get(obj, key), key), [], meta)


@register_format("ambignq", candidates=False)
def parse_ambignq(obj: Any, r: _Record) -> Example:
  """AmbigNQ light JSON (a list; github.com/shmsw25/AmbigQA, dev_light.json): {"id", "question",
  "annotations": [{"type": "singleAnswer", "answer": [str]} | {"type": "multipleQAs",
  "qaPairs": [{"question", "answer": [str]}]}]}. Gold answers = union over all annotations.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id")
  question = r.string(r.get(obj, "question"), "question")
  annotations = r.get(obj, "annotations")
  if not isinstance(annotations, list) or not annotations:
    r.fail("annotations", "expected a non-empty list")
  raw = []
  for i, ann in enumerate(annotations):
    f = f"annotations[{i}]"
    ann = r.obj(ann, f)
    kind = r.get(ann, "type", f"{f}.type")
    if kind == "singleAnswer":
      raw.extend(r.answers(r.get(ann, "answer", f"{f}.answer"), f"{f}.answer"))
    elif kind == "multipleQAs":
      pairs = r.get(ann, "qaPairs", f"{f}.qaPairs")
      if not isinstance(pairs, list):
        r.fail(f"{f}.qaPairs", "expected a list")
      for k, pair in enumerate(pairs):
        g = f"{f}.qaPairs[{k}]"
        pair = r.obj(pair, g)
        raw.extend(r.answers(r.get(pair, "answer", f"{g}.answer"), f"{g}.answer"))
    else:
      r.fail(f"{f}.type", f"expected singleAnswer or multipleQAs, got {short(kind)}")
  meta = {"n_interpretations": max(len(a["qaPairs"]) if a["type"] == "multipleQAs" else 1 for a in annotations)}
  return Example(qid, question, r.answers(raw, "annotations"), [], meta)


@register_format("triviaqa_dpr", candidates=False, records=_tsv)
def parse_triviaqa_dpr(row: Any, r: _Record) -> Example:
  """TriviaQA in DPR's TSV (facebookresearch/DPR data `trivia-dev.qa.csv`, also Pyserini's
  topics.dpr.trivia.dev.txt): question <TAB> Python-literal list of answer aliases, e.g.
  `Ezzard Charles was a world champion in which sport?\t['Boxing', 'Prize fighting']`.
  """
  if len(row) != 2:
    r.fail("columns", f"expected 2 tab-separated columns (question, answers), got {len(row)}")
  question = r.string(row[0], "question")
  try:
    answers = ast.literal_eval(row[1])
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):  # all literal_eval raises
    r.fail("answers", f"not a Python list literal: {short(row[1])}")
  return Example(str(r.line), question, r.answers(answers, "answers"), [], {})


_CANDIDATES_FIELD = {"dpr": "ctxs", "hotpotqa": "context", "hotpotqa_ircot": "contexts", "musique": "paragraphs"}


def _check_passage_ids(ex: Example, r: _Record, format: str) -> None:
  """Two different passages of one query under one id would share reader cache entries (the cache
  keys passages by id): an error. Exact repeats are harmless and kept."""
  first: dict[str, int] = {}
  for j, c in enumerate(ex.candidates):
    i = first.setdefault(c.pid, j)
    if i != j and (ex.candidates[i].title, ex.candidates[i].text) != (c.title, c.text):
      f = _CANDIDATES_FIELD.get(format, "ctxs")
      r.fail(
          f"{f}[{j}]",
          f"passage id {short(c.pid)} is also {f}[{i}], with a different text (the reader "
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
      r = _Record(path, n, unit)
      ex = parse(obj, r)
      if require_candidates and not ex.candidates:
        r.fail("ctxs" if format == "dpr" else None, "no candidate passages (empty candidate list)")
      _check_passage_ids(ex, r, format)
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
