"""The supervised warm-up: listwise softmax cross-entropy (rax) of the cross-encoder's scores
against relevance labels (update.make_sft_step), before RRPO."""

from __future__ import annotations

import jax
import numpy as np
from absl import logging

from rrpo_jax import loop
from rrpo_jax import models
from rrpo_jax import sharding
from rrpo_jax import update as update_lib
from rrpo_jax.batches import labels_for, make_loader, model_inputs


def run(config, workdir: str, params, *, reranker, examples: list, dp: sharding.DataParallel, writer):
  """Warms up `params` (host pytree) on `examples` (the train split); returns the warmed-up params.

  Resumes from <workdir>/checkpoints/sft; returns `params` unchanged when sft.steps is 0 or the
  checkpoint is already complete (the next phase reads that checkpoint: models.initial_params).
  """
  c = config
  s = c.sft
  if s.steps <= 0:
    logging.info("sft: skipped (sft.steps = 0)")
    return params
  ckpt = models.checkpointer(c, workdir, "sft")
  last = ckpt.latest_step()
  if last is not None and last >= s.steps:  # done, unless the final step is damaged (checkpoint.fallback)
    last = ckpt.read_params()[1]
  if last is not None and last >= s.steps:
    logging.info("sft: already done (%s step %d)", ckpt.directory, last)
    ckpt.close()
    return params
  tx = update_lib.make_optimizer(
      learning_rate=s.learning_rate,
      total_steps=s.steps,
      warmup_steps=s.warmup_steps,
      weight_decay=s.weight_decay,
      max_grad_norm=s.max_grad_norm,
  )
  host = jax.tree.map(np.asarray, update_lib.TrainState.create(jax.tree.map(np.asarray, params), tx, window_capacity=1))
  loader = make_loader(reranker, dp, examples, n=c.data.num_candidates, batch_size=s.batch_size, seed=c.seed)
  key = jax.random.key(c.seed + 1)  # dropout (update.device_key)
  start = 0
  if last is not None:
    host, key, start, _ = loop.resume(ckpt, "sft", host, key, loader, writer)
  else:
    loop.fresh("sft", writer)
  sft_step = update_lib.make_sft_step(reranker.apply, tx, dp)

  def step_fn(state, b, step):
    del step  # the state counts its steps
    state, m = sft_step(state, *dp.shard((model_inputs(b), b["where"], labels_for(b, s.labels), b["query_mask"])), key)
    return state, {k: float(v) for k, v in jax.device_get(m).items()}

  state = loop.run(
      "sft",
      dp.replicate(host),
      iter(loader),
      step_fn,
      steps=s.steps,
      start=start,
      key=key,
      ckpt=ckpt,
      dp=dp,
      loader=loader,
      writer=writer,
      config=c,
      postfix=lambda m: {"loss": f"{m['loss']:.3f}"},
  )
  return sharding.host_copy(dp, state).params
