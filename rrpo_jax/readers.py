"""The readers of a run: one ScoringStep (reader + response cache + reward weights) per distinct
reader setting, built on first use and closed at the end of the run.

scoring("train") is config.reader; scoring("eval") is config.eval.reader over config.reader (a
transfer evaluation's different reader). Equal settings share one reader (and its value memo).
"""

from __future__ import annotations

import json

import jax

from rrpo_jax import rewards
from rrpo_jax.config import ConfigError, resolve_reader
from rrpo_jax.reader import make_cache, make_reader
from rrpo_jax.scoring import ScoringStep


class Readers:
  """A resource owned by train_and_evaluate (use as a context manager), passed to the phases that
  call the reader."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self._steps: dict[str, ScoringStep] = {}

  def scoring(self, which: str = "train") -> ScoringStep:
    """A ScoringStep for the training reader or the (possibly different) evaluation reader."""
    c = self.config
    rc = resolve_reader(c.reader, c.eval.reader if which == "eval" else None)
    key = json.dumps({k: v for k, v in rc.items() if k != "cache_path"}, sort_keys=True)
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
