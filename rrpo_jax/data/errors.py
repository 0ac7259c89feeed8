"""Errors and read reports for data files: every message names file, line or record, and field."""

from __future__ import annotations

import dataclasses


class DataError(ValueError):
  """A bad record: `path`, `line` (1-based line, or record for JSON documents), `field`, `message`."""

  def __init__(self, path: str, line: int | None, field: str | None, message: str, *,
               unit: str = "line"):
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
