"""One checkpoint wrapper over orbax's CheckpointManager.

A checkpoint of a phase (sft or rrpo) holds two items:
  state: a pytree of arrays -- params, optimiser state, step, advantage window, RNG key data;
  extra: JSON -- the data loader position, the phase, and a pointer to the frozen reference.
Kept: the latest `keep` steps plus the best one by an eval metric (when metrics were given).

Restore order used by the trainer (train.py): resume from this directory if it holds a step >
initialise from a given checkpoint or Hugging Face directory > from scratch.
"""

from __future__ import annotations

import logging as std_logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

# Orbax warns on every save without metrics when a best metric is tracked; that is expected here.
std_logging.getLogger("absl").addFilter(lambda r: "did not provide metrics" not in r.getMessage())


def key_to_data(key: jax.Array) -> np.ndarray:
  """A typed PRNG key as its raw uint32 data (checkpointable)."""
  return np.asarray(jax.random.key_data(key))


def key_from_data(data) -> jax.Array:
  """Inverse of key_to_data (default threefry implementation)."""
  return jax.random.wrap_key_data(np.asarray(data, dtype=np.uint32))


class Checkpointer:
  """Saves and restores the training state of one phase under `directory`."""

  def __init__(
      self, directory: str, *, keep: int = 2, best_metric: str = "", best_mode: str = "max", async_save: bool = True
  ):
    self.directory = os.path.abspath(directory)
    self.best_metric = best_metric
    policies = [pp.LatestN(max(1, keep))]
    best_fn = None
    if best_metric:
      best_fn = lambda m: float(m[best_metric])  # noqa: E731
      policies.append(
          pp.BestN(get_metric_fn=best_fn, n=1, reverse=best_mode == "min", keep_checkpoints_without_metrics=False)
      )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=pp.AnyPreservationPolicy(policies),
        best_fn=best_fn,
        best_mode=best_mode,
        enable_async_checkpointing=async_save,
        create=True,
        cleanup_tmp_directories=True,
    )
    self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "extra"))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def best_step(self) -> int | None:
    """The best step by the tracked metric; the latest step when none has metrics."""
    step = self._mngr.best_step() if self.best_metric else None
    return self.latest_step() if step is None else step

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def save(self, step: int, state: Any, extra: dict, *, metrics: dict | None = None, force: bool = True) -> bool:
    """Saves `state` (array pytree) and `extra` (JSON-able dict) at `step`."""
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      metrics = None
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), extra=ocp.args.JsonSave(extra))
    return self._mngr.save(step, args=args, metrics=metrics, force=force)

  def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict, int]:
    """Restores (state, extra, step); `target` gives the state's structure, shapes and shardings."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    out = self._mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore())
    )
    return out["state"], dict(out["extra"]), step

  def restore_extra(self, step: int | None = None) -> dict:
    """Only the JSON part (cheap: no arrays are read)."""
    step = self.latest_step() if step is None else step
    out = self._mngr.restore(step, args=ocp.args.Composite(extra=ocp.args.JsonRestore()))
    return dict(out["extra"])

  def restore_params(self, step: int | None = None) -> Any:
    """Only the params (state["train"]["params"] or state["params"]), as host numpy arrays (for init-from and export)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    state = out["state"]
    state = state["train"] if "train" in state else state
    return jax.tree.map(np.asarray, state["params"])

  def wait(self):
    """Blocks until a background save has finished."""
    self._mngr.wait_until_finished()

  def close(self):
    self._mngr.wait_until_finished()
    self._mngr.close()


def saved_steps(path: str) -> list[int]:
  """The finished steps under a Checkpointer directory, sorted, without opening it: its numbered
  folders (an unfinished orbax write is a "<step>.orbax-checkpoint-tmp..." folder, never counted)."""
  if not os.path.isdir(path):
    return []
  return sorted(int(name) for name in os.listdir(path) if name.isdigit())


def is_checkpoint_dir(path: str) -> bool:
  """True if `path` looks like a Checkpointer directory (numbered step folders)."""
  return bool(saved_steps(path))


def save_params(path: str, params: Any):
  """Writes a frozen params tree once (the RRPO reference) with a synchronous checkpointer."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, params, force=True)


def load_params(path: str, target: Any | None = None) -> Any:
  """Reads a tree written by save_params."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckptr:
    if target is None:
      return jax.tree.map(np.asarray, ckptr.restore(path))
    return ckptr.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
