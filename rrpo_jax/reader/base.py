"""The reader interface: a batch of (question, ordered passages) -> responses, greedy decoding."""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from typing import Any, Sequence

from rrpo_jax.config.reader_defaults import DEFAULTS  # noqa: F401  (re-exported: reader.DEFAULTS)


class ReaderError(RuntimeError):
  """The reader cannot serve requests (misconfiguration, rejected credentials, ...)."""


class ReaderUnavailableError(ReaderError):
  """The reader stayed unreachable or failing past its retry budget: stop, do not score zeros."""


@dataclasses.dataclass(frozen=True)
class Passage:
  """One passage shown to the reader; `pid` identifies it in cache keys."""

  pid: str
  title: str
  text: str


@dataclasses.dataclass(frozen=True)
class Request:
  """A question with its ordered passages (the prefix the reader sees)."""

  qid: str
  question: str
  passages: tuple[Passage, ...]

  @property
  def pids(self) -> tuple[str, ...]:
    return tuple(p.pid for p in self.passages)


@dataclasses.dataclass(frozen=True)
class Response:
  """A reader answer. `text` is post-processed; `raw` is what the model produced.

  ok=False marks a failed call (never cached); malformed=True marks a reply without a usable
  answer, which counts as the empty answer. `truncated` counts the passages cut so that the prompt
  fits the reader's context window (readers that know it: llama_cpp).
  """

  text: str
  raw: str = ""
  prompt_tokens: int = 0
  completion_tokens: int = 0
  latency_s: float = 0.0
  ok: bool = True
  malformed: bool = False
  error: str | None = None
  cached: bool = False
  truncated: int = 0


@dataclasses.dataclass(frozen=True)
class Scored:
  """Teacher-forced log-probabilities of a continuation after a request's answering prompt.

  logprobs[i] = log p(c_i | prompt, c_<i) for the continuation's tokens c_1..c_m (the same prompt
  the reader answers from, the continuation where the model's answer would start). ok=False marks a
  failed call (never cached; it carries no signal).
  """

  logprobs: tuple[float, ...] = ()
  prompt_tokens: int = 0
  latency_s: float = 0.0
  ok: bool = True
  error: str | None = None
  cached: bool = False
  truncated: int = 0

  @property
  def mean_logprob(self) -> float:
    """mean_i log p(c_i | ...); -inf for an empty or failed score."""
    return sum(self.logprobs) / len(self.logprobs) if self.ok and self.logprobs else float("-inf")


class Reader(abc.ABC):
  """Base class: subclasses implement `_complete` and `_settings`.

  Every backend decodes greedily, caps new tokens at `max_tokens`, uses `template` to build the
  prompt (through the model's chat template when it has one) and post-processes the answer.
  """

  backend: str = "?"

  def __init__(self, *, template, max_tokens: int, postprocess):
    self.template = template
    self.max_tokens = int(max_tokens)
    self._postprocess = postprocess

  @abc.abstractmethod
  def _settings(self) -> dict:
    """Model name and decoding settings that change answers (no secrets)."""

  @abc.abstractmethod
  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    """Raw responses (text not yet post-processed), one per request, in order."""

  @property
  def identity(self) -> str:
    """Names the reader and its decoding settings: part of every cache key."""
    settings = {"backend": self.backend, "temperature": 0.0, "max_tokens": self.max_tokens, **self._settings()}
    return json.dumps(settings, sort_keys=True)

  def clean(self, raw: str) -> str:
    """The post-processed answer for raw model output (also applied to cached raw output)."""
    return self._postprocess(raw)

  def answer(self, requests: Sequence[Request]) -> list[Response]:
    """Answers for `requests`, in order. Raises ReaderUnavailableError past the retry budget."""
    if not requests:
      return []
    out = []
    for r in self._complete(list(requests)):
      text = self.clean(r.raw) if r.ok else ""
      out.append(dataclasses.replace(r, text=text))
    return out

  def _score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    """Teacher-forced scores, one per (request, continuation) pair, in order (backends override)."""
    del requests, continuations
    raise ReaderError(
        f"reader backend {self.backend!r} cannot score continuations (teacher-forced log-probabilities of "
        "the gold answer): use llama_cpp, hf, or an openai server that returns prompt log-probabilities"
    )

  def score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    """log p(continuation tokens | the answering prompt of request), pairwise, in order.

    The continuation is scored where the model's answer would start (right after the generation
    prompt, as `answer` decodes). Raises ReaderError for a backend that cannot score and
    ReaderUnavailableError past the retry budget; a single failed pair is Scored(ok=False).
    """
    if len(requests) != len(continuations):
      raise ValueError(f"score: {len(requests)} requests but {len(continuations)} continuations")
    if not requests:
      return []
    return self._score(list(requests), list(continuations))

  def ask(
      self, requests: Sequence[Request], *, answer: Sequence[bool], continuations: Sequence[Sequence[str]]
  ) -> tuple[list[Response | None], list[list[Scored]]]:
    """For each request its answer (where answer[i], else None) and the scores of continuations[i].

    Default: one answer() batch, then one score() batch; backends that keep a KV cache (llama_cpp)
    interleave them per request so that the scores reuse the prompt the answer just read.
    """
    responses: list[Response | None] = [None] * len(requests)
    idx = [i for i, a in enumerate(answer) if a]
    for i, r in zip(idx, self.answer([requests[i] for i in idx])):
      responses[i] = r
    pairs = [(i, c) for i, cs in enumerate(continuations) for c in cs]
    flat = self.score([requests[i] for i, _ in pairs], [c for _, c in pairs]) if pairs else []
    scores: list[list[Scored]] = [[] for _ in requests]
    for (i, _), s in zip(pairs, flat):
      scores[i].append(s)
    return responses, scores

  def close(self) -> None:
    """Releases clients and models."""

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def timed(fn, *args, **kwargs):
  """(result, seconds)."""
  start = time.perf_counter()
  result = fn(*args, **kwargs)
  return result, time.perf_counter() - start
