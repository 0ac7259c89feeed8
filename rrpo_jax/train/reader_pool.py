"""The readers of a run: one ScoringStep (reader + response cache + reward weights) per distinct
reader setting, built on first use and closed at the end of the run.

scoring("train") is config.reader; scoring("eval") is config.eval.reader over config.reader (a
transfer evaluation's different reader). Equal settings share one reader (and its value memo).
"""

from __future__ import annotations

import json
import math

import jax

from rrpo_jax.core import rewards
from rrpo_jax.errors import ConfigError
from rrpo_jax.config.validation import resolve_reader
from rrpo_jax.reader import Passage, ReaderError, Request, make_cache, make_reader
from rrpo_jax.train.scoring import ScoringStep

# The request of the start-up check (never cached): any reader that works answers it.
CHECK_REQUEST = Request(
    "rrpo_jax-reader-check",
    "What is the capital of France?",
    (Passage("rrpo_jax-reader-check", "Paris", "Paris is the capital and largest city of France."),),
)
CHECK_CONTINUATION = "Paris"


class Readers:
  """A resource owned by train_and_evaluate (use as a context manager), passed to the phases that
  call the reader."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self._steps: dict[str, ScoringStep] = {}
    self._checked: set[str] = set()

  def _settings(self, which: str) -> tuple[str, dict]:
    """(cache-independent key, resolved settings) of the training or evaluation reader."""
    c = self.config
    rc = resolve_reader(c.reader, c.eval.reader if which == "eval" else None)
    return json.dumps({k: v for k, v in rc.items() if k != "cache_path"}, sort_keys=True), rc

  def check(self, which: str = "train", *, scores: bool = False) -> None:
    """One real request to the reader (outside the cache), before any training: a reader that
    cannot be built, is unreachable, rejects the request or answers without an answer raises
    ReaderError naming the config section, backend, base_url / model. scores=True (the run asks it
    for teacher-forced scores: reward.lambda_ll, sft.labels="reader", eval.likelihood) also scores
    one continuation: a reader that cannot score fails here, not with zeros later. Each setting is
    checked once."""
    key, rc = self._settings(which)
    if scores and key + "+scores" not in self._checked:
      self._check_scores(which, rc)
      self._checked.add(key + "+scores")
    if key in self._checked:
      return
    where = describe(rc, "config.eval.reader" if which == "eval" else "config.reader")
    try:
      (response,) = self.scoring(which).reader.answer([CHECK_REQUEST])
    except (ReaderError, ConfigError, OSError) as e:
      cls = type(e) if isinstance(e, ReaderError) else ReaderError  # ReaderUnavailableError stays itself
      raise cls(f"{where}: the reader check before training failed: {e}") from e
    if not response.ok or response.malformed:
      raise ReaderError(f"{where}: the reader check before training got no usable answer: {response.error}")
    self._checked.add(key)

  def _check_scores(self, which: str, rc: dict) -> None:
    where = describe(rc, "config.eval.reader" if which == "eval" else "config.reader")
    try:
      (scored,) = self.scoring(which).reader.score([CHECK_REQUEST], [CHECK_CONTINUATION])
    except (ReaderError, ConfigError, OSError) as e:
      cls = type(e) if isinstance(e, ReaderError) else ReaderError
      raise cls(f"{where}: the reader's scoring check before training failed: {e}") from e
    if not scored.ok or not scored.logprobs or not all(math.isfinite(x) and x <= 0 for x in scored.logprobs):
      raise ReaderError(
          f"{where}: the reader's scoring check before training got no usable log-probabilities "
          f"({scored.error or scored.logprobs})"
      )

  def scoring(self, which: str = "train") -> ScoringStep:
    """A ScoringStep for the training reader or the (possibly different) evaluation reader."""
    c = self.config
    key, rc = self._settings(which)
    if key not in self._steps:
      if rc.get("n_threads", 0) in (0, -1):
        rc["n_threads"] = None
      try:
        reader = make_reader(rc)
      except ValueError as e:
        raise ConfigError(f"config.{'eval.reader' if which == 'eval' else 'reader'}: {e}") from e
      cache = make_cache(rc, self.workdir, processes=jax.process_count())
      self._steps[key] = ScoringStep(reader, cache, weights=rewards.weights(c.reward))
    return self._steps[key]

  def close(self):
    for step in self._steps.values():
      step.reader.close()
      if step.cache is not None:
        step.cache.close()

  def __enter__(self) -> "Readers":
    return self

  def __exit__(self, *exc):
    self.close()


def describe(rc: dict, section: str) -> str:
  """The settings that locate a reader, e.g. config.reader (backend openai, base_url http://..., model m)."""
  parts = [f"backend {rc.get('backend')}"]
  if rc.get("backend") == "openai":
    parts.append(f"base_url {rc.get('base_url')}")
  if rc.get("model"):
    parts.append(f"model {rc.get('model')}")
  return f"{section} ({', '.join(parts)})"
