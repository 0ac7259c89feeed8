"""The RRPO phase: per step a rollout (rollout.py: score, select, reader, batch) and the clipped
ratio + KL update against a frozen reference (update.make_update_step).

Restore order: resume from <workdir>/checkpoints/rrpo (its frozen reference is
<workdir>/checkpoints/reference) > start from restore.initial_params (rrpo.init_from > the sft
checkpoint > the params handed in), which also becomes the frozen reference.
"""

from __future__ import annotations

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
from rrpo_jax.train.batches import make_loader
from rrpo_jax.errors import ConfigError
from rrpo_jax.train.reader_pool import Readers
from rrpo_jax.train.rollout import make_rollout

# evaluate(step, policy_params, ref_params) -> flat metrics: the periodic evaluation on eval.select_split
Evaluate = Callable[[int, Any, Any], dict]


def run(
    config,
    workdir: str,
    params,
    *,
    reranker,
    examples: list,
    dp: sharding.DataParallel,
    writer,
    readers: Readers,
    evaluate: Evaluate,
) -> Any:
  """Trains from `params` (or resumes); returns the final policy params (host pytree). The training
  reader (readers.scoring("train")) is started only when there are steps left."""
  c = config
  r = c.rrpo
  ckpt = restore.checkpointer(c, workdir, "rrpo")
  last = ckpt.latest_step()
  ref_dir = restore.ckpt_dir(workdir, "reference")
  tx = update_lib.make_optimizer(
      learning_rate=r.learning_rate,
      total_steps=r.steps,
      warmup_steps=r.warmup_steps,
      weight_decay=r.weight_decay,
      max_grad_norm=r.max_grad_norm,
      accumulation_steps=r.grad_accum,
  )
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
    host, key, start, extra = loop.resume(ckpt, "rrpo", host, key, loader, writer, truncate=("eval", "val"))
    if start >= r.steps:
      ckpt.close()
      return host.params
  else:  # 2. init-from (or the sft result), 3. the params handed in
    ref_params, origin = restore.initial_params(c, workdir, params)
    ckpt_lib.save_params(ref_dir, ref_params)  # collective: every process calls it
    extra = {"reference": {"path": ref_dir, "origin": origin}}
    host = jax.tree.map(np.asarray, update_lib.TrainState.create(ref_params, tx, window_capacity=r.window))
    start = 0
    loop.fresh("rrpo", writer, truncate=("eval", "val"))
  ref_repl = dp.replicate(ref_params)
  rollout = make_rollout(
      r, dp=dp, apply_fn=reranker.apply, ref_params_repl=ref_repl, key=key, scoring=readers.scoring("train")
  )
  update = update_lib.make_update_step(
      reranker.apply,
      tx,
      dp,
      advantage=r.advantage,
      gamma=r.gamma,
      lam=r.lam,
      eps=r.clip_eps,
      beta=r.beta,
      kl=r.kl_estimator,
      estimator=r.loss,
      temperature=r.temperature,
      standardize=r.standardize,
  )

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

  state = loop.run(
      "rrpo",
      dp.replicate(host),
      iter(loader),
      step_fn,
      steps=r.steps,
      start=start,
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
  return sharding.host_copy(dp, state).params
