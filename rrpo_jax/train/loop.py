"""The phase loop that sft and rrpo share: resume, step, log, checkpoint.

  state, key, start, extra = resume(ckpt, phase, state, key, loader, writer, truncate=...)
  fresh(phase, writer, truncate=...)   # or, starting from scratch
  state, evaluated = run(phase, state, batches, step_fn, steps=..., start=..., ...)
A phase supplies its step function step_fn(state, batch, step) -> (state, metrics) (device state in,
device state out); the loop times it, stops on a non-finite loss, writes the metrics every
config.log_every steps, and checkpoints {"train": host state, "rng": key data} with the loader's
position every checkpoint.every_steps steps, after a periodic evaluation, and at the end. It
returns the final state and the last periodic evaluation's results (for the phase to return).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax.train import evaluation
from rrpo_jax.train import faults
from rrpo_jax.train import metrics as metrics_lib
from rrpo_jax.core import sharding
from rrpo_jax.reader import ReaderError


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True):
  """A tqdm bar on host 0 (disabled elsewhere or when `enabled` is False)."""
  return tqdm(
      total=total,
      initial=initial,
      desc=desc,
      dynamic_ncols=True,
      file=sys.stderr,
      disable=not enabled or jax.process_index() != 0,
      leave=True,
  )


def resume(
    ckpt: ckpt_lib.Checkpointer,
    phase: str,
    host_state,
    key: jax.Array,
    loader,
    writer,
    *,
    step: int | None = None,
    truncate: tuple[str, ...] = (),
) -> tuple[Any, jax.Array, int, dict]:
  """Restores (host state, key, step, extra) of `step` (default latest) into the loader's position;
  drops the metric rows of `phase` and `truncate` past that step (they are written again)."""
  restored, extra, start = ckpt.restore({"train": host_state, "rng": ckpt_lib.key_to_data(key)}, step)
  loader.restore(extra["data"])
  for name in (phase,) + tuple(truncate):
    writer.truncate(name, start)
  logging.info("%s: resumed from step %d", phase, start)
  return restored["train"], ckpt_lib.key_from_data(restored["rng"]), start, extra


def fresh(phase: str, writer, *, truncate: tuple[str, ...] = ()) -> None:
  """A phase that starts from scratch drops the metric rows of `phase` and `truncate` past step 0:
  rows of an attempt killed before its first checkpoint was finalised (they are written again)."""
  for name in (phase,) + tuple(truncate):
    writer.truncate(name, 0)


def run(
    phase: str,
    state,
    batches: Iterator,
    step_fn: Callable,
    *,
    steps: int,
    start: int,
    key: jax.Array,
    ckpt: ckpt_lib.Checkpointer,
    dp: sharding.DataParallel,
    loader,
    writer,
    config,
    extra: dict | None = None,
    postfix: Callable[[dict], dict] = lambda m: {},
    evaluate: Callable[[int, Any], dict | None] | None = None,
) -> tuple[Any, dict | None]:
  """Steps start+1..steps; returns (the final device state, the results of the last periodic
  evaluation, None when none ran). Closes `ckpt`.

  evaluate(step, state) -> evaluation results (report.run_eval's) or None: a periodic evaluation
  (its flat metrics go with the checkpoint of that step, for best-checkpoint selection).
  """
  c = config
  key_data = np.asarray(jax.random.key_data(key))
  bar = progress(steps, phase, initial=start, enabled=c.progress)
  step = start
  evaluated = None  # the last periodic evaluation's results
  try:
    for step in range(start + 1, steps + 1):
      t0 = time.perf_counter()
      state, m = step_fn(state, next(batches), step)
      faults.point(f"{phase}.step.{step}")
      metrics_lib.check_finite(phase, step, m)
      m["step_seconds"] = time.perf_counter() - t0
      if step % c.log_every == 0 or step == steps:
        writer.write(phase, step, m)
      faults.point(f"{phase}.logged.{step}")
      bar.set_postfix(**postfix(m))
      bar.update(1)
      results = evaluate(step, state) if evaluate is not None else None
      eval_metrics = None
      if results is not None:
        evaluated, eval_metrics = results, evaluation.flat_metrics(results)
        faults.point(f"{phase}.evaluated.{step}")
      if eval_metrics is not None or step % c.checkpoint.every_steps == 0 or step == steps:
        ckpt.save(
            step,
            {"train": sharding.host_copy(dp, state), "rng": key_data},
            {"phase": phase, "data": loader.state(), "step": step, **(extra or {})},
            metrics=eval_metrics,
        )
        faults.point(f"{phase}.saving.{step}")
  except ReaderError as e:
    ckpt.wait()
    raise type(e)(f"{e}\nTraining stopped at {phase} step {step}; {saved(ckpt, phase)}") from e
  finally:
    bar.close()
    ckpt.close()
  return state, evaluated


def saved(ckpt: ckpt_lib.Checkpointer, phase: str, *, when: str = "once the reader is reachable") -> str:
  """Where a stopped phase resumes from, as the end of its stop message; `when`: what to fix first."""
  last = ckpt.latest_step()
  if last is None:
    return (
        f"no {phase} checkpoint was written yet ({ckpt.directory}): rerun the same command to start "
        f"{phase} again {when}."
    )
  return f"its last checkpoint (step {last}) in {ckpt.directory} is intact: rerun the same command to resume {when}."
