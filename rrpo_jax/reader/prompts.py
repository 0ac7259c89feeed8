"""Prompt templates: (question, ordered passages) -> the reader's user message, and answer cleaning."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Callable, Sequence

from rrpo_jax.reader.base import Passage

# Chosen on 20 NQ dev questions with the gold passage (SmolLM2-135M, llama.cpp, max_tokens 24):
# EM / F1 / hit 5 / 21.6 / 40 vs 10 / 17.7 / 20 for "Passages: ... Question: ... <instruction> Answer:"
# with the instruction "Answer the question with a short phrase of a few words, not a sentence."
DEFAULT_INSTRUCTION = "Answer the question in a few words using the passages."
DEFAULT_LAYOUT = "{instruction}\n\n{passages}\n\nQuestion: {question}\nAnswer:"
DEFAULT_PASSAGE = "[{index}] {title}\n{text}"

_ANSWER_LABEL = re.compile(r"^\s*(?:final\s+)?answer\s*:\s*", re.IGNORECASE)
# Leading passage markers the reader copies from the prompt: "[1]", "[4] Title", "[1], [2]: ...", and a
# marker cut by max_tokens ("[4").
_MARKERS = re.compile(r"^\s*(?:\[\s*\d+\s*(?:\]|$)[\s,.;:)-]*)+")
# An echoed line of the prompt's scaffolding ("Question: ...", "Passages: ..."): never the answer.
_SCAFFOLD = re.compile(r"^\s*(?:question|passages?|context)\s*:", re.IGNORECASE)
_MARK = "\ue000rrpo-message-{}\ue000"  # stands for a message's text while a chat template is rendered
_MARKS = re.compile("\ue000rrpo-message-(\\d+)\ue000")


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
  """How a prompt is laid out; its `hash` is part of every cache key.

  layout: a format string with {passages}, {question}, {instruction}.
  passage: a format string with {index} (1-based), {title}, {text}; passages are joined by
  `separator`. `max_passage_chars` truncates each passage text (None: no limit).
  `system`: an optional system message (chat readers only).
  """

  layout: str = DEFAULT_LAYOUT
  passage: str = DEFAULT_PASSAGE
  instruction: str = DEFAULT_INSTRUCTION
  separator: str = "\n"
  system: str | None = None
  max_passage_chars: int | None = None

  def render(self, question: str, passages: Sequence[Passage]) -> str:
    """The user message (or the whole completion prompt for readers without a chat template)."""
    parts = []
    for i, p in enumerate(passages):
      text = p.text if self.max_passage_chars is None else p.text[: self.max_passage_chars]
      parts.append(self.passage.format(index=i + 1, title=p.title, text=text))
    return self.layout.format(passages=self.separator.join(parts), question=question, instruction=self.instruction)

  def messages(self, question: str, passages: Sequence[Passage]) -> list[dict]:
    """Chat messages: optional system message, then the rendered prompt as the user turn."""
    msgs = [{"role": "system", "content": self.system}] if self.system else []
    msgs.append({"role": "user", "content": self.render(question, passages)})
    return msgs

  @property
  def hash(self) -> str:
    """A short stable digest of every field."""
    blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def postprocess(text: str) -> str:
  """The answer: the first non-empty line, stripped, without a leading "Answer:" label.

  Leading passage markers ("[1]", "[1] Title", "[1], [2]") are stripped, echoed scaffolding lines
  ("Question: ...", "Passages: ...") are skipped, and a line that ends with ":" ("The answer to the
  question is:") is a lead-in: the next line is taken. A reply that is only a marker is the empty
  answer.
  """
  lines = []
  for raw in text.strip().splitlines():
    if _SCAFFOLD.match(raw) and not _ANSWER_LABEL.match(raw):
      continue
    line = _ANSWER_LABEL.sub("", _MARKERS.sub("", _ANSWER_LABEL.sub("", raw))).strip()
    if line:
      lines.append(line)
  return next((line for line in lines if not line.endswith(":")), lines[0] if lines else "")


def chat_pieces(render: Callable[[list[dict]], str], messages: list[dict]) -> list[tuple[str, bool]] | None:
  """A chat prompt as (text, is_message) pieces in order: the template's markup (its special tokens
  are meant) and the messages' texts (to be tokenised as plain text: a passage that holds
  "<|im_end|>" must not end the turn). render(messages) -> the prompt string. None when the
  template rewrites the texts it is given (the pieces cannot be told apart)."""
  marked = [dict(m, content=_MARK.format(i)) for i, m in enumerate(messages)]
  parts = _MARKS.split(render(marked))  # markup, index, markup, index, ..., markup
  if [int(i) for i in parts[1::2]] != list(range(len(messages))):
    return None
  return [(messages[int(p)]["content"], True) if j % 2 else (p, False) for j, p in enumerate(parts) if p]
