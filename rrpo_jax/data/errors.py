"""Errors and read reports for data files: every message names file, line or record, and field."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

MAX_LISTED = 20  # skipped records listed one by one on stderr (the count is always exact)
_MAX_REPR = 60  # characters of a bad value quoted in a message


def short(value: Any) -> str:
  """repr(value), cut to _MAX_REPR characters: messages stay one short line whatever the data."""
  text = (
      repr(value)
      if not isinstance(value, (list, dict)) or len(value) < 100
      else f"<{type(value).__name__} of {len(value)} items>"
  )
  return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


class DataError(ValueError):
  """A bad record: `path`, `line` (1-based line, or record for JSON documents), `field`, `message`."""

  def __init__(self, path: str, line: int | None, field: str | None, message: str, *, unit: str = "line"):
    self.path, self.line, self.field, self.message = str(path), line, field, message
    where = self.path if line is None else f"{self.path}: {unit} {line}"
    what = f"field '{field}'" if field else "record"
    super().__init__(f"{where}: {what}: {message}")


@dataclasses.dataclass
class ReadReport:
  """What a read did: records read and kept, records skipped with the reason for each."""

  path: str
  n_read: int = 0
  n_skipped: int = 0
  errors: list[str] = dataclasses.field(default_factory=list)

  def skip(self, error: DataError) -> None:
    self.n_skipped += 1
    self.errors.append(str(error))

  def summary(self) -> str:
    return f"{self.path}: {self.n_read} examples read, {self.n_skipped} invalid records skipped"


def report_skipped(report: ReadReport, stream=None) -> None:
  """Prints the skip count and the first MAX_LISTED reasons (the command lines' --skip_invalid)."""
  stream = stream or sys.stderr  # looked up at call time: redirect_stderr applies
  for line in report.errors[:MAX_LISTED]:
    print(f"skipped: {line}", file=stream)
  if len(report.errors) > MAX_LISTED:
    print(f"skipped: ... and {len(report.errors) - MAX_LISTED} more", file=stream)
  print(report.summary(), file=stream)


def cli_error(error: DataError | OSError) -> int:
  """Prints a command line's one-line error (no traceback) -> its exit status: 2 bad data, 1 I/O."""
  print(f"error: {error}", file=sys.stderr)
  return 2 if isinstance(error, DataError) else 1
