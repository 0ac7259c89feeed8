"""The one example format: a question, its gold answers and a list of candidate passages.

Serialised as DPR-style JSON lines (one example per line):
  {"id": qid, "question": str, "answers": [str], "ctxs": [{"id", "title", "text", "score",
   "has_answer", "is_supporting"?}], "meta": {...}}
`is_supporting` is written only where the dataset gives a relevance label (HotpotQA, MuSiQue).
"has_answer_by": LABELLER marks has_answer labels computed by text.contains_answer, which the
reader then keeps instead of recomputing them (normalising every passage again is slow).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

from rrpo_jax.core.text import contains_answer

# Written into files and compared on reading: the value stays the function's first home (it still
# re-exports it), so files written before the move keep their labels.
LABELLER = "rrpo_jax.core.rewards.contains_answer"


@dataclasses.dataclass
class Candidate:
  """A retrieved passage. `score` is the retriever's (None if none); `is_supporting` the dataset's
  relevance label (None where the dataset gives none)."""

  pid: str
  title: str
  text: str
  score: float | None = None
  has_answer: bool = False
  is_supporting: bool | None = None

  def to_json(self) -> dict[str, Any]:
    out = {"id": self.pid, "title": self.title, "text": self.text, "score": self.score, "has_answer": self.has_answer}
    if self.is_supporting is not None:
      out["is_supporting"] = self.is_supporting
    return out


@dataclasses.dataclass
class Example:
  """A query: id, question, gold answers (any match counts), candidates in retriever order."""

  qid: str
  question: str
  answers: list[str]
  candidates: list[Candidate] = dataclasses.field(default_factory=list)
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self, *, with_candidates: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": self.qid, "question": self.question, "answers": list(self.answers)}
    if with_candidates:
      out["ctxs"] = [c.to_json() for c in self.candidates]
      out["has_answer_by"] = LABELLER
    if self.meta:
      out["meta"] = self.meta
    return out


def candidate(
    pid: str,
    title: str,
    text: str,
    answers: Sequence[str],
    *,
    score: float | None = None,
    is_supporting: bool | None = None,
) -> Candidate:
  """A Candidate whose has_answer is computed from the answers (text.contains_answer)."""
  return Candidate(str(pid), title, text, score, contains_answer(text, answers), is_supporting)


def relabel(examples: Iterable[Example]) -> None:
  """Recompute has_answer of every candidate in place (SQuAD-normalised containment in the text)."""
  for ex in examples:
    for c in ex.candidates:
      c.has_answer = contains_answer(c.text, ex.answers)
