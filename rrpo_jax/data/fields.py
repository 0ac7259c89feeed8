"""Field checks for format adapters: where a record came from, and typed access to its fields.

An adapter (data/formats.py) reads a record through a Record `r`: `r.get(obj, "question")`,
`r.string(...)`, `r.answers(...)`, ...; a bad value raises DataError naming file, line (or record)
and field, with the offending value quoted in at most a few dozen characters (errors.short).
"""

from __future__ import annotations

from typing import Any

from rrpo_jax.data.errors import DataError, short


class Record:
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
