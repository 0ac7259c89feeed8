"""Answer normalisation shared by data labelling (has_answer) and the rewards (EM / F1 / hit).

Normalisation is SQuAD's: lower-case, drop punctuation, drop the articles a/an/the, collapse white
space. Unicode is NFKC-folded first so that full-width and composed forms compare equal.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


class _PunctuationTable(dict):
  """str.translate table deleting ASCII and Unicode punctuation (category P*), filled lazily."""

  def __missing__(self, codepoint: int):
    ch = chr(codepoint)
    value = None if ch in string.punctuation or unicodedata.category(ch).startswith("P") else codepoint
    self[codepoint] = value
    return value


_DROP_PUNCTUATION = _PunctuationTable()


def normalize_answer(text: str) -> str:
  """SQuAD normalisation: lower, no punctuation, no articles, single spaces."""
  text = unicodedata.normalize("NFKC", text).lower().translate(_DROP_PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def as_list(answers: str | Iterable[str]) -> list[str]:
  """One answer or an iterable of answers -> a list."""
  return [answers] if isinstance(answers, str) else list(answers)


def contains_answer(text: str, answers: str | Iterable[str]) -> bool:
  """True if a normalised gold answer occurs in the normalised text on token boundaries.

  Token boundaries keep "1" from matching inside "1990". Empty normalised answers never match.
  Used for the reward's hit term and for a passage's has_answer label.
  """
  padded = f" {normalize_answer(text)} "
  for answer in as_list(answers):
    norm = normalize_answer(answer)
    if norm and f" {norm} " in padded:
      return True
  return False
