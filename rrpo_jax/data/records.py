"""Raw records out of data files: (line or record number, parsed record or DataError), per layout.

Files may be gzip-compressed (told by the magic bytes, not the name); a UTF-8 byte order mark is
ignored. JSON files come in two layouts, told apart by the content: JSON Lines (one record per
line; errors name the line) and one JSON document holding a list of records (also {"data": [...]};
errors name the record, 1-based). TSV files are read one row per line with csv quoting. A bad
record is yielded as its DataError, so the reader (data.files.read_examples) decides whether to
stop or skip; a file that cannot be read at all raises.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import re
import zlib
from typing import Any, Iterator

from rrpo_jax.data.errors import DataError, short

_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a \\uD800-\\uDFFF escape: maybe an unpaired surrogate


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


def json_records(path: str) -> tuple[str, Iterator[tuple[int, Any]]]:
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


def tsv_records(path: str) -> tuple[str, Iterator[tuple[int, Any]]]:
  """("line", rows) of a TSV file."""
  return "line", _tsv_rows(path)
