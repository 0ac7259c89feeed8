"""Name -> function registries for the pluggable parts (advantage estimators, KL estimators, losses,
window standardisation, reader backends, data formats, reward terms).

Each registry lives in the module that owns the parts (objective.ADVANTAGES, reader.BACKENDS, ...);
a new part is one decorated function there plus a test, and config validation reads `names()` of
the registry, never a copied list:

  @ADVANTAGES.register("my_estimator")
  def _my_estimator(r, v, *, gamma, lam): ...
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """An ordered name -> entry mapping; `what` names the kind in error messages ("advantage kind")."""

  def __init__(self, what: str):
    self.what = what
    self._entries: dict[str, T] = {}

  def register(self, name: str, entry: T | None = None) -> Any:
    """`register(name, entry)`, or as a decorator `@register(name)`. A name is registered once."""

    def add(value: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.what} {name!r} is already registered")
      self._entries[name] = value
      return value

    return add if entry is None else add(entry)

  def get(self, name: str) -> T:
    """The entry of `name`; ValueError naming the registered ones otherwise."""
    if name not in self._entries:
      raise ValueError(f"{self.what} {name!r} not in {self.names()}")
    return self._entries[name]

  def names(self) -> tuple[str, ...]:
    """Registered names in registration order."""
    return tuple(self._entries)

  def unregister(self, name: str) -> None:
    """Removes `name` (for tests that register a throwaway entry)."""
    del self._entries[name]

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)

  def __getitem__(self, name: str) -> T:
    return self.get(name)

  def items(self):
    return self._entries.items()


def one_of(names) -> str:
  """("a", "b", "c") -> "a, b or c" (for messages)."""
  names = tuple(names)
  return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


Fn = Callable[..., Any]
