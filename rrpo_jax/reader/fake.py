"""A deterministic reader without a model or a server, for hermetic tests and benchmarks.

It answers with the title of the last passage it is shown, cut to max_tokens words (the title of
the passage a prefix just added: so the answer, and the reward, depend on the order the reranker
chose). It scores a continuation's words (one "token" each) at log p = -1 / (1 + the number of the
passages shown whose text contains the word), -3 when none does: a likelihood that grows with the
passages that hold the answer. Never a default: select it with reader.backend="fake".
"""

from __future__ import annotations

from typing import Sequence

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import DEFAULTS, Reader, Request, Response, Scored


class FakeReader(Reader):
  """Answer = the last passage's title (first max_tokens words); token counts are word counts."""

  backend = "fake"

  def __init__(
      self,
      *,
      template: prompts.PromptTemplate | None = None,
      max_tokens: int = DEFAULTS["max_tokens"],
      postprocess=prompts.postprocess,
  ):
    super().__init__(template=template or prompts.PromptTemplate(), max_tokens=max_tokens, postprocess=postprocess)

  def _settings(self) -> dict:
    return {"model": "fake-last-title"}

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    out = []
    for r in requests:
      words = (r.passages[-1].title if r.passages else "").split()[: self.max_tokens]
      prompt = self.template.render(r.question, r.passages)
      out.append(
          Response(text="", raw=" ".join(words), prompt_tokens=len(prompt.split()), completion_tokens=len(words))
      )
    return out

  def _score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    out = []
    for r, c in zip(requests, continuations):
      texts = [p.text.lower() for p in r.passages]
      held = [sum(w.lower() in t for t in texts) for w in c.split()]
      out.append(Scored(logprobs=tuple(-1.0 / (1 + n) if n else -3.0 for n in held)))
    return out
