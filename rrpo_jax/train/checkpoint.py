"""One checkpoint wrapper over orbax's CheckpointManager.

A checkpoint of a phase (sft or rrpo) holds two items:
  state: a pytree of arrays -- params, optimiser state, step, advantage window, RNG key data;
  extra: JSON -- the data loader position, the phase, and a pointer to the frozen reference.
Kept: the latest `keep` steps plus the best one by an eval metric (when metrics were given).

Restore order used by the trainer (trainer.py): resume from this directory if it holds a step >
initialise from a given checkpoint or Hugging Face directory > from scratch.

Failures. A write that fails (disk full, unwritable directory; orbax reports a failed asynchronous
write at the next save or wait) raises CheckpointError naming the directory; the steps saved before
stay intact. A kill during an asynchronous write leaves a "<step>.orbax-checkpoint-tmp" folder, which
is never read and is removed at the next start. A step that cannot be read raises CheckpointError
naming it; with fallback=True, restoring the latest step falls back to the newest step that reads
and moves the damaged ones aside to "<step>.damaged" (kept, never deleted). Damage is told from a
mismatch (a checkpoint of another model or config) by reading the step without a target: only a
step that cannot be read at all is damaged, and a mismatch is never set aside. On several processes
each host first reads the step on its own (no barrier) and the hosts agree on the newest step that
all of them read before the collective restore: none waits in a restore that another has given up.
"""

from __future__ import annotations

import errno
import logging as std_logging
import re
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from rrpo_jax import paths

# Orbax warns on every save without metrics when a best metric is tracked; that is expected here.
# Its background threads log a failed write with a traceback, several times over; the failure is
# raised again in the main thread, where Checkpointer reports it once.
std_logging.getLogger("absl").addFilter(
    lambda r: "did not provide metrics" not in r.getMessage() and not (r.exc_info and "orbax" in r.pathname)
)


class CheckpointError(RuntimeError):
  """A checkpoint cannot be written (disk full, unwritable) or read (damaged, another model)."""


# errno -> what to tell the user
STORAGE_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file cannot grow: the disk is full or a file size limit is reached",
    errno.EACCES: "the directory is not writable",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a file stands where a directory should be",
    errno.EEXIST: "a file stands where a directory should be",
}


def describe_error(e: BaseException) -> str:
  """One line for an OSError or an orbax / tensorstore error, with a hint when storage is at fault."""
  text = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
  text = text if len(text) <= 400 else text[:400] + "..."
  code = getattr(e, "errno", None)
  match = re.search(r"os_error_code='(\d+)'", str(e))  # tensorstore's form of errno
  code = int(match.group(1)) if code is None and match else code
  return f"{type(e).__name__}: {text}" + (f" ({STORAGE_HINTS[code]})" if code in STORAGE_HINTS else "")


def key_to_data(key: jax.Array) -> np.ndarray:
  """A typed PRNG key as its raw uint32 data (checkpointable)."""
  return np.asarray(jax.random.key_data(key))


def key_from_data(data) -> jax.Array:
  """Inverse of key_to_data (default threefry implementation)."""
  # jax annotates key_bits_array as jax.Array; it takes any uint32 array (numpy here, as saved).
  return jax.random.wrap_key_data(np.asarray(data, dtype=np.uint32))  # type: ignore[arg-type]


class Checkpointer:
  """Saves and restores the training state of one phase under `directory`.

  fallback: restoring the latest step (step=None) falls back to older steps when it is damaged.
  read_only: another run's directory (rrpo.init_from): nothing in it is created, removed or
  renamed, not even a half-written step folder that run may still be writing; save refuses.
  """

  def __init__(
      self,
      directory: str,
      *,
      keep: int = 2,
      best_metric: str = "",
      best_mode: str = "max",
      async_save: bool = True,
      fallback: bool = False,
      read_only: bool = False,
  ):
    self.directory = paths.absolute(directory)
    self.read_only = read_only
    self.best_metric = best_metric
    self.fallback = fallback
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
        create=not read_only,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
    )
    try:
      self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "extra"))
      # orbax removes half-written "<step>.orbax-checkpoint-tmp" folders in a background thread and
      # waits for it only at the next save; wait here so a restore and a listing see the settled folder.
      settle = getattr(self._mngr, "_maybe_await_cleanup_tmp_directory", None)
      if settle is not None:
        settle()
    except OSError as e:
      raise CheckpointError(f"cannot open the checkpoint directory {self.directory}: {describe_error(e)}") from e

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
    if self.read_only:
      raise CheckpointError(
          f"{self.directory} was opened read-only (another run's checkpoints): not saving step {step}"
      )
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      metrics = None
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), extra=ocp.args.JsonSave(extra))
    return self._writing(lambda: self._mngr.save(step, args=args, metrics=metrics, force=force))

  def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict, int]:
    """Restores (state, extra, step); `target` gives the state's structure, shapes and shardings.
    step=None: the latest step (with fallback, the newest one that reads)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore())
    out, step = self._read(step, lambda s: self._mngr.restore(s, args=args))
    return out["state"], dict(out["extra"]), step

  def restore_extra(self, step: int | None = None) -> dict:
    """Only the JSON part (cheap: no arrays are read)."""
    args = ocp.args.Composite(extra=ocp.args.JsonRestore())
    return dict(self._read(step, lambda s: self._mngr.restore(s, args=args))[0]["extra"])

  def restore_params(self, step: int | None = None) -> Any:
    """Only the params (state["train"]["params"] or state["params"]), as host numpy arrays (for init-from and export)."""
    return self.read_params(step)[0]

  def read_params(self, step: int | None = None) -> tuple[Any, int]:
    """(params, step read): restore_params and the step it read (with fallback, maybe older than the latest)."""
    args = ocp.args.Composite(state=ocp.args.StandardRestore())
    out, step = self._read(step, lambda s: self._mngr.restore(s, args=args))
    state = out["state"]
    state = state["train"] if "train" in state else state
    return jax.tree.map(np.asarray, state["params"]), step

  def wait(self):
    """Blocks until a background save has finished."""
    self._writing(self._mngr.wait_until_finished)

  def close(self):
    try:
      self._writing(self._mngr.wait_until_finished)
    finally:
      self._mngr.close()

  def _writing(self, fn: Callable):
    """fn() with a failed write (this one or an earlier asynchronous one) raised as CheckpointError."""
    try:
      return fn()
    except CheckpointError:
      raise
    except Exception as e:  # orbax, tensorstore and OS errors alike  # pylint: disable=broad-except
      raise CheckpointError(
          f"writing a checkpoint in {self.directory} failed: {describe_error(e)}. The steps saved before it "
          f"are intact: {saved_steps(self.directory) or 'none'}"
      ) from e

  def _read(self, step: int | None, read: Callable[[int], Any]) -> tuple[Any, int]:
    """(read(s), s) for `step`, else for the latest step, falling back to older ones when they are
    damaged and self.fallback is set; CheckpointError names the directory and step."""
    steps = [step] if step is not None else sorted(self.all_steps(), reverse=True)
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    if jax.process_count() > 1 and self.fallback and step is None:
      return self._read_agreed(steps, read)
    damaged: list[int] = []
    for s in steps:
      try:
        out = read(s)
      except Exception as e:  # pylint: disable=broad-except
        if not self._unreadable_here(s):  # it reads without a target: not damaged
          raise self._mismatch(s, e) from e
        damaged.append(s)
        if not (self.fallback and step is None):
          hint = "set --config.checkpoint.fallback=True to resume from the step before it, or " if step is None else ""
          raise CheckpointError(
              f"checkpoint step {s} in {self.directory} is damaged ({describe_error(e)}): {hint}move "
              f"{paths.join(self.directory, str(s))} aside"
          ) from e
        logging.warning("checkpoint step %d in %s is damaged (%s); trying the step before it", s, self.directory, e)
        continue
      self._set_aside(damaged)
      return out, s
    raise CheckpointError(f"no checkpoint in {self.directory} can be read: steps {damaged} are all damaged")

  def _mismatch(self, step: int, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"checkpoint step {step} in {self.directory} does not fit this run ({describe_error(e)}): was it "
        "written with another model or config? Use that config, or a fresh --workdir"
    )

  def _read_agreed(self, steps: list[int], read: Callable[[int], Any]) -> tuple[Any, int]:
    """_read's fallback on several processes: the hosts agree on the newest step that every one of
    them can read before any collective restore, so that no host waits in orbax's restore barrier
    while another has moved on (each host reads the step once more, barrier-free, to check it)."""
    damaged: list[int] = []
    for s in steps:
      error = self._unreadable_here(s)
      if error:
        logging.warning(
            "checkpoint step %d in %s does not read on process %d (%s)", s, self.directory, jax.process_index(), error
        )
      oks = multihost_utils.process_allgather(np.asarray(not error))
      if not np.all(oks):
        logging.warning("checkpoint step %d in %s is damaged; trying the step before it", s, self.directory)
        damaged.append(s)
        continue
      try:
        out = read(s)
      except Exception as e:  # pylint: disable=broad-except
        raise self._mismatch(s, e) from e
      self._set_aside(damaged)
      return out, s
    raise CheckpointError(f"no checkpoint in {self.directory} can be read: steps {damaged} are all damaged")

  def _unreadable_here(self, step: int) -> str:
    """Why `step` cannot be read on this process ("" if it can), without a target: every array read
    into host memory and the JSON item, by a checkpointer of this process alone (no barrier, no
    collective). A step that fails here is damaged; one that reads here but not into this run's
    target is a mismatch."""
    mp = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(), active_processes={jax.process_index()})
    handler = ocp.CompositeCheckpointHandler(
        state=ocp.PyTreeCheckpointHandler(multiprocessing_options=mp),
        extra=ocp.JsonCheckpointHandler(multiprocessing_options=mp),
    )
    path = paths.join(self.directory, str(step))
    try:
      with ocp.Checkpointer(handler, multiprocessing_options=mp) as ckptr:
        tree = ckptr.metadata(path).item_metadata["state"].tree
        host = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        ckptr.restore(
            path, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(restore_args=host), extra=ocp.args.JsonRestore())
        )
    except Exception as e:  # pylint: disable=broad-except
      return describe_error(e)
    return ""

  def _set_aside(self, steps: list[int]):
    """Renames damaged step folders to "<step>.damaged" (on process 0), so that training writes them again."""
    if not steps:
      return
    if self.read_only:
      logging.warning("damaged checkpoint steps %s of %s left in place (opened read-only)", steps, self.directory)
      return
    if jax.process_index() == 0:
      for s in steps:
        path, n = paths.join(self.directory, f"{s}.damaged"), 1
        while paths.exists(path):
          path, n = paths.join(self.directory, f"{s}.damaged{n}"), n + 1
        paths.rename(paths.join(self.directory, str(s)), path)
        logging.warning("moved the damaged checkpoint step %d of %s to %s", s, self.directory, path)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"rrpo_jax: damaged checkpoints set aside in {self.directory}")
    self._mngr.reload()


def saved_steps(path: str) -> list[int]:
  """The finished steps under a Checkpointer directory, sorted, without opening it: its numbered
  folders (an unfinished orbax write is a "<step>.orbax-checkpoint-tmp..." folder, never counted)."""
  if not paths.isdir(path):
    return []
  return sorted(int(name) for name in paths.listdir(path) if name.isdigit())


def is_checkpoint_dir(path: str) -> bool:
  """True if `path` looks like a Checkpointer directory (numbered step folders)."""
  return bool(saved_steps(path))


def save_params(path: str, params: Any):
  """Writes a frozen params tree once (the RRPO reference) with a synchronous checkpointer."""
  path = paths.absolute(path)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(path, params, force=True)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"writing {path} failed: {describe_error(e)}") from e


def load_params(path: str, target: Any | None = None) -> Any:
  """Reads a tree written by save_params."""
  path = paths.absolute(path)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      if target is None:
        return jax.tree.map(np.asarray, ckptr.restore(path))
      return ckptr.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"the frozen params in {path} cannot be read: {describe_error(e)}") from e
