"""The trainer: train_and_evaluate(config, workdir) runs the configured modes in order.

Modes (config.mode): "default" = sft -> rrpo -> eval; or a comma list of
  sft     supervised warm-up of the cross-encoder, listwise softmax loss (rax) on relevance labels (sft.py);
  rrpo    the method (rrpo.py): per step a rollout (rollout.py: (a) score with the frozen reference and
          the training-mode policy, select k actions, no gradient; (b) the reader scores the k
          prefixes of both, outside jit, cached) and the update ((c)-(e) advantages, window, clipped
          ratio + KL: update.py), through the phase loop shared with sft (loop.py);
  eval    reader EM/F1 and IR metrics for retriever / reference / policy orders (report.py, evaluation.py);
  export  the policy (best or latest checkpoint) as a Hugging Face directory (report.py).
Before any mode runs, every reader the run will call answers one check request (check_readers):
a wrong base_url or model stops the run there, not after the warm-up.
Each phase is a function of explicit inputs that returns what it made: sft.run(start) -> the sft
result, rrpo.run(start) -> (policy, reference, last periodic evaluation); evaluation and export
score the params they are handed. The trainer holds those results (Held) and decides here, once,
where each phase's params come from (the restore order), reading from disk only what it does not hold:
  sft           model.init (sft resumes from <workdir>/checkpoints/sft itself);
  rrpo          resume from <workdir>/checkpoints/rrpo (rrpo.run reads its own checkpoints) >
                rrpo.init_from > the sft result (of this run, else the workdir's sft checkpoint) >
                model.init (rrpo_start);
  eval, export  the policy: RRPO's latest (or best: eval.checkpoint, export.which) step > the sft
                result > rrpo.init_from > model.init (eval_policy); the frozen reference: RRPO's >
                <workdir>/checkpoints/reference > what RRPO would start from (eval_reference).
So mode=eval or mode=export alone scores what the workdir (or rrpo.init_from) holds. The kernel set
(config.kernels: core/cpu_kernels.select) is chosen here, once, before any step is built.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import time
from typing import Any

import jax
from absl import logging

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax.train import evaluation
from rrpo_jax.train import faults
from rrpo_jax.train import metrics as metrics_lib
from rrpo_jax.train import restore
from rrpo_jax import paths
from rrpo_jax.train import report
from rrpo_jax.train import rrpo
from rrpo_jax.train import sft
from rrpo_jax.core import cpu_kernels, kernels, sharding
from rrpo_jax.errors import ConfigError
from rrpo_jax.config.validation import eval_systems, select_split, validate
from rrpo_jax.data import splits
from rrpo_jax.data.errors import DataError
from rrpo_jax.reader import CacheError, ReaderError
from rrpo_jax.train.reader_pool import Readers


class WorkdirError(RuntimeError):
  """A write in the workdir failed: the disk is full, or the workdir is not a writable directory."""


# Failures a user can fix (config, data, reader, learning rate, disk): main prints them without a traceback.
USER_ERRORS = (
    ConfigError,
    DataError,
    ReaderError,
    CacheError,
    ckpt_lib.CheckpointError,
    WorkdirError,
    metrics_lib.NonFiniteLossError,
)


def train_and_evaluate(config, workdir: str) -> dict | None:
  """Runs config.mode in `workdir` (created); returns the last evaluation results (host 0). A write
  that fails for lack of space or in the workdir, at the start or mid-run, raises WorkdirError."""
  problem = paths.backend_problem(workdir)
  if problem:
    raise ConfigError(f"--workdir {problem}")
  kernels.use(cpu_kernels.select(config.kernels))  # the one kernel switch, before any step is built
  try:
    return _train_and_evaluate(config, workdir)
  except OSError as e:
    failure = storage_failure(e, paths.absolute(workdir))
    if failure is None:
      raise
    raise failure from e


def storage_failure(e: OSError, workdir: str) -> WorkdirError | None:
  """One line for a failed write in `workdir` (or for lack of space anywhere), naming what was
  saved before it; None for other OS errors."""
  name = str(e.filename or "")
  inside = name == workdir or name.startswith(workdir + os.sep)
  if not inside and e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
    return None
  saved = [
      f"{phase} steps {steps}"
      for phase in ("sft", "rrpo")
      if (steps := ckpt_lib.saved_steps(restore.ckpt_dir(workdir, phase)))
  ]
  return WorkdirError(
      f"a write for the run in {workdir} failed: {ckpt_lib.describe_error(e)}. What was saved before is "
      f"intact (checkpoints: {', '.join(saved) or 'none yet'}): free space or fix the workdir, then rerun the "
      "same command to resume"
  )


@dataclasses.dataclass(frozen=True)
class Held:
  """What the trainer holds between phases: model.init's params, and the results of the training
  phases that ran in this invocation (None: not run)."""

  init: restore.Snapshot
  sft: restore.Snapshot | None = None
  rrpo: rrpo.Result | None = None


def rrpo_start(config, workdir: str, held: Held) -> restore.Snapshot | None:
  """RRPO's start (and frozen reference): None when RRPO resumes from the workdir, else
  rrpo.init_from > the sft result (held, else the workdir's sft checkpoint) > model.init."""
  if restore.resumes(workdir, "rrpo"):
    return None
  return fresh_start(config, workdir, held)


def fresh_start(config, workdir: str, held: Held) -> restore.Snapshot:
  """What RRPO starts from when it does not resume: rrpo.init_from > the sft result > model.init."""
  if config.rrpo.init_from:
    return restore.init_from(config)
  if held.sft is not None and held.sft.phase == "sft":
    return held.sft
  return restore.sft_result(config, workdir) or held.init


def eval_policy(config, workdir: str, held: Held, *, which: str) -> restore.Snapshot:
  """The policy eval / export score: RRPO's latest or best (`which`) step > the sft result >
  rrpo.init_from > model.init."""
  c = config
  if held.rrpo is not None or restore.resumes(workdir, "rrpo"):
    return restore.phase_params(c, workdir, "rrpo", which=which, held=held.rrpo.policy if held.rrpo else None)
  if held.sft is not None and held.sft.phase == "sft":
    return held.sft
  if restore.resumes(workdir, "sft"):
    return restore.phase_params(c, workdir, "sft")
  if c.rrpo.init_from:
    return restore.init_from(c)
  return held.init


def eval_reference(config, workdir: str, held: Held) -> Any:
  """The frozen reference eval scores: RRPO's (held, else <workdir>/checkpoints/reference), else
  what RRPO would start from."""
  if held.rrpo is not None:
    return held.rrpo.reference
  frozen = restore.frozen_reference(workdir)
  return frozen if frozen is not None else fresh_start(config, workdir, held).params


def _train_and_evaluate(config, workdir: str) -> dict | None:
  modes = validate(config, num_devices=jax.device_count())
  workdir = paths.absolute(workdir)
  paths.makedirs(workdir)
  writer = metrics_lib.MetricWriter(workdir)
  writer.write_config(config)
  dp = sharding.DataParallel(config.parallel)
  examples = functools.cache(functools.partial(splits.load, config.data))  # split -> examples, read once
  reranker = restore.build_reranker(config)
  held = Held(init=restore.model_init(config, reranker))
  results = None
  t0 = time.perf_counter()
  with Readers(config, workdir) as readers:
    check_readers(config, workdir, modes, readers)
    evaluate = functools.partial(
        report.run_eval, config, workdir, reranker=reranker, dp=dp, readers=readers, writer=writer
    )

    def periodic_eval(step, policy_params, ref_params) -> dict:  # RRPO's evaluations on eval.select_split
      split = select_split(config)
      return evaluate(
          examples=examples(split),
          split=split,
          step=step,
          policy_params=policy_params,
          ref_params=ref_params,
          quiet=True,
      )

    try:
      for mode in modes:
        t = time.perf_counter()
        if mode == "sft":
          held = dataclasses.replace(
              held,
              sft=sft.run(
                  config,
                  workdir,
                  held.init,
                  reranker=reranker,
                  examples=examples("train"),
                  dp=dp,
                  writer=writer,
                  readers=readers,
              ),
          )
        elif mode == "rrpo":
          out = rrpo.run(
              config,
              workdir,
              rrpo_start(config, workdir, held),
              reranker=reranker,
              examples=examples("train"),
              dp=dp,
              writer=writer,
              readers=readers,
              evaluate=periodic_eval,
          )
          held = dataclasses.replace(held, rrpo=out)
          if out.evaluation is not None:
            results = out.evaluation
        elif mode == "eval":
          results = run_eval(config, workdir, held, evaluate=evaluate, examples=examples, writer=writer)
          faults.point("eval.done")
        else:
          exported = eval_policy(config, workdir, held, which=config.export.which)
          report.run_export(config, workdir, exported, reranker=reranker)
        logging.info("%s done in %.1f s", mode, time.perf_counter() - t)
    finally:
      writer.close()
  if jax.process_index() == 0:
    metrics_lib.plot(workdir)
    if results is not None and "eval" in modes:
      print(
          "\n" + evaluation.table(results, title=f"evaluation (step {results.get('step', '')}) in {workdir}"),
          flush=True,
      )
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
  return results


def check_readers(config, workdir: str, modes, readers: Readers) -> None:
  """One real request to every reader this run will call, before any training (Readers.check):
  the training reader when RRPO has steps left, the evaluation reader (process 0, which alone calls
  it) for the eval mode and RRPO's periodic evaluations."""
  c = config
  done = max(ckpt_lib.saved_steps(restore.ckpt_dir(workdir, "rrpo")), default=0)
  rrpo_left = "rrpo" in modes and done < c.rrpo.steps
  sft_scores = "sft" in modes and c.sft.steps > 0 and c.sft.labels == "reader"
  if rrpo_left:
    readers.check("train", scores=c.reward.lambda_ll != 0)
  if sft_scores:
    readers.check("train", scores=True)
  if jax.process_index() == 0 and ("eval" in modes or (rrpo_left and c.eval.every_steps > 0)):
    readers.check("eval", scores=bool(c.eval.likelihood))


def run_eval(config, workdir: str, held: Held, *, evaluate, examples, writer) -> dict:
  """The eval mode: the eval.checkpoint policy and the frozen reference (eval_policy, eval_reference:
  what the trainer holds, else read) on data.eval_split, at the policy's RRPO step (0 for anything
  else). Its metrics row replaces any row of the same evaluation (a periodic one of that step, or
  this mode's in a run killed after it)."""
  e = config.eval
  scored = eval_policy(config, workdir, held, which=e.checkpoint)
  step = scored.step if scored.phase == "rrpo" else 0
  writer.drop("eval" + (f"_{e.name}" if e.name else ""), step)
  ref = eval_reference(config, workdir, held) if "reference" in eval_systems(e) else None
  split = config.data.eval_split
  return evaluate(examples=examples(split), split=split, step=step, policy_params=scored.params, ref_params=ref)
