"""The RRPO phase: per step a rollout (rollout.py: score, select, reader, batch) and the clipped
ratio + KL update against a frozen reference (update.make_update_step), both under the phase's one
update.RRPOConfig (config.rrpo, typed).

Restore order: resume from <workdir>/checkpoints/rrpo (its frozen reference is
<workdir>/checkpoints/reference) > the start the trainer hands in (its restore order: rrpo.init_from >
the sft result > model.init), which also becomes the frozen reference. run returns what it made: the
policy, the reference and the last periodic evaluation's results.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax.train import loop
from rrpo_jax.train import restore
from rrpo_jax import paths
from rrpo_jax.core import sharding
from rrpo_jax.core import update as update_lib
from rrpo_jax.core.update import RRPOConfig
from rrpo_jax.train.batches import make_loader
from rrpo_jax.errors import ConfigError
from rrpo_jax.train.reader_pool import Readers
from rrpo_jax.train.rollout import make_rollout

# evaluate(step, policy_params, ref_params) -> results (report.run_eval's): the periodic evaluation
# on eval.select_split
Evaluate = Callable[[int, Any, Any], dict]


@dataclasses.dataclass(frozen=True)
class Result:
  """What the phase made: the policy (phase "rrpo" at its last step, the latest checkpoint), the
  frozen reference params, and the results of the last periodic evaluation (None: none ran)."""

  policy: restore.Snapshot
  reference: Any
  evaluation: dict | None


def run(
    config,
    workdir: str,
    start: restore.Snapshot | None,
    *,
    reranker,
    examples: list,
    dp: sharding.DataParallel,
    writer,
    readers: Readers,
    evaluate: Evaluate,
) -> Result:
  """Trains from `start` (also the frozen reference), or resumes from the workdir; returns the
  policy and reference (host pytrees). start=None: the trainer found RRPO checkpoints to resume
  from (restore.resumes). The training reader (readers.scoring("train")) is started only when there
  are steps left."""
  c = config
  r = RRPOConfig.from_config(c.rrpo)
  ckpt = restore.checkpointer(c, workdir, "rrpo")
  last = ckpt.latest_step()
  ref_dir = restore.ckpt_dir(workdir, "reference")
  tx = update_lib.optimizer_for(r)
  loader = make_loader(reranker, dp, examples, n=c.data.num_candidates, batch_size=r.batch_size, seed=c.seed + 2)
  key = jax.random.key(c.seed + 3)  # dropout (update.device_key) and Plackett-Luce sampling (rollout)
  if last is not None:  # 1. resume from the workdir
    ref_path = ckpt.restore_extra()["reference"]["path"]
    if not paths.isdir(ref_path):
      raise ConfigError(
          f"cannot resume {ckpt.directory} (step {last}): its frozen reference {ref_path} is "
          "missing; restore it or start in a fresh --workdir"
      )
    ref_params = ckpt_lib.load_params(ref_path)
    host = jax.tree.map(np.asarray, update_lib.TrainState.create(ref_params, tx, window_capacity=r.window))
    host, key, done, extra = loop.resume(ckpt, "rrpo", host, key, loader, writer, truncate=("eval", "val"))
    if done >= r.steps:
      ckpt.close()
      return Result(_policy(workdir, host.params, done), ref_params, None)
  else:  # 2. the start the trainer hands in
    if start is None:
      raise ckpt_lib.CheckpointError(
          f"{ckpt.directory} holds step folders {ckpt_lib.saved_steps(ckpt.directory)} but no finished "
          "checkpoint: move them aside to start RRPO afresh"
      )
    ref_params = start.params
    ckpt_lib.save_params(ref_dir, ref_params)  # collective: every process calls it
    extra = {"reference": {"path": ref_dir, "origin": start.origin()}}
    host = jax.tree.map(np.asarray, update_lib.TrainState.create(ref_params, tx, window_capacity=r.window))
    done = 0
    loop.fresh("rrpo", writer, truncate=("eval", "val"))
  ref_repl = dp.replicate(ref_params)
  rollout = make_rollout(
      r, dp=dp, apply_fn=reranker.apply, ref_params_repl=ref_repl, key=key, scoring=readers.scoring("train")
  )
  update = update_lib.make_update_step(reranker.apply, tx, dp, r)

  def step_fn(state, b, step):
    batch, diagnostics = rollout(state.params, b, step)
    t = time.perf_counter()
    state, m = update(state, dp.shard(batch), key)
    m = {kk: float(v) for kk, v in jax.device_get(m).items()}
    m.update(diagnostics)
    m["time_update"] = time.perf_counter() - t
    return state, m

  def periodic_eval(step, state):
    if not (c.eval.every_steps and step % c.eval.every_steps == 0):
      return None
    return evaluate(step, sharding.host_copy(dp, state).params, ref_params)

  state, evaluated = loop.run(
      "rrpo",
      dp.replicate(host),
      iter(loader),
      step_fn,
      steps=r.steps,
      start=done,
      key=key,
      ckpt=ckpt,
      dp=dp,
      loader=loader,
      writer=writer,
      config=c,
      extra={"reference": extra["reference"]},
      postfix=lambda m: {"r": f"{m['reward']:.2f}", "V": f"{m['value']:.2f}", "kl": f"{m['kl']:.3f}"},
      evaluate=periodic_eval,
  )
  return Result(_policy(workdir, sharding.host_copy(dp, state).params, r.steps), ref_params, evaluated)


def _policy(workdir: str, params, step: int) -> restore.Snapshot:
  return restore.Snapshot(params, "rrpo", step, restore.ckpt_dir(workdir, "rrpo"))
