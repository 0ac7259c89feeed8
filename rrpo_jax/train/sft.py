"""The supervised warm-up: listwise softmax cross-entropy (rax) of the cross-encoder's scores
against relevance labels (update.make_sft_step), before RRPO.

Labels (sft.labels): the dataset's is_supporting / has_answer, or "reader": the reader's preference,
the REPLUG LSR / Atlas perplexity-distillation target
  y_d = softmax_d(log q_d / T),  q_d = max_alias exp(mean token log p(alias | question, passage d alone)),
over the question's valid candidates (T = sft.reader_temperature; N scoring calls a question, cached).
The loss is then the cross-entropy H(y, softmax(s)), i.e. KL(y || softmax(s)) up to a constant.

Settings: config.sft as one update.SFTConfig. Restore order: resume from <workdir>/checkpoints/sft
(or, when it is complete, its final params) > the params the trainer hands in (model.init). The
phase returns the params it made; the trainer hands them to RRPO (trainer.py's restore order).
"""

from __future__ import annotations

import jax
import numpy as np
from absl import logging

from rrpo_jax.train import loop
from rrpo_jax.train import restore
from rrpo_jax.core import sharding
from rrpo_jax.core import update as update_lib
from rrpo_jax.core.update import SFTConfig
from rrpo_jax.train.batches import labels_for, make_loader, model_inputs
from rrpo_jax.train.scoring import ScoringStep, request


def reader_labels(scoring: ScoringStep, examples, n: int, *, temperature: float) -> np.ndarray:
  """float32[B, n] soft labels y_d = softmax_d(log q_d / T) over each example's first n candidates
  (module docstring); a row of zeros (the query leaves the loss) for a padding query (None), a query
  without gold answers or one of whose scores failed."""
  out = np.zeros((len(examples), n), np.float32)
  rows = [(i, j) for i, ex in enumerate(examples) if ex is not None for j in range(min(n, len(ex.candidates)))]
  _, qs = scoring.answer_and_likelihood(
      [request(examples[i], [j]) for i, j in rows], [list(examples[i].answers) for i, _ in rows], generate=False
  )
  q = np.full((len(examples), n), np.nan)
  for (i, j), value in zip(rows, qs):
    q[i, j] = np.nan if value is None else value
  for i, ex in enumerate(examples):
    m = min(n, len(ex.candidates)) if ex is not None else 0
    row = q[i, :m]
    if m == 0 or np.isnan(row).any() or not (row > 0).any():
      continue
    z = np.log(np.maximum(row, 1e-300)) / temperature
    z = np.exp(z - z.max())
    out[i, :m] = z / z.sum()
  return out


def run(
    config,
    workdir: str,
    start: restore.Snapshot,
    *,
    reranker,
    examples: list,
    dp: sharding.DataParallel,
    writer,
    readers=None,
) -> restore.Snapshot:
  """Warms up `start` (the trainer's: model.init) on `examples` (the train split); returns the sft
  result. readers (reader_pool.Readers): the training reader, for sft.labels="reader".

  sft.steps = 0: `start` itself. Else the params of the final step, phase "sft": trained here from
  `start`, resumed from <workdir>/checkpoints/sft, or, when that checkpoint is already complete,
  the params read there (the trainer hands them to RRPO: nothing reads them again).
  """
  c = config
  s = SFTConfig.from_config(c.sft)
  if s.steps <= 0:
    logging.info("sft: skipped (sft.steps = 0)")
    return start
  sft_dir = restore.ckpt_dir(workdir, "sft")
  ckpt = restore.checkpointer(c, workdir, "sft")
  last = ckpt.latest_step()
  if last is not None and last >= s.steps:  # done, unless the final step is damaged (checkpoint.fallback)
    params, last = ckpt.read_params()
    if last >= s.steps:
      logging.info("sft: already done (%s step %d)", ckpt.directory, last)
      ckpt.close()
      return restore.Snapshot(params, "sft", last, sft_dir)
  tx = update_lib.optimizer_for(s)
  host = jax.tree.map(
      np.asarray, update_lib.TrainState.create(jax.tree.map(np.asarray, start.params), tx, window_capacity=1)
  )
  loader = make_loader(reranker, dp, examples, n=c.data.num_candidates, batch_size=s.batch_size, seed=c.seed)
  key = jax.random.key(c.seed + 1)  # dropout (update.device_key)
  resumed = 0  # the step the loop resumes after
  if last is not None:
    host, key, resumed, _ = loop.resume(ckpt, "sft", host, key, loader, writer)
  else:
    loop.fresh("sft", writer)
  sft_step = update_lib.make_sft_step(reranker.apply, tx, dp)

  def labels(b) -> np.ndarray:
    if s.labels != "reader":
      return labels_for(b, s.labels)
    exs = [ex if keep else None for ex, keep in zip(b["examples"], b["query_mask"])]
    n = np.asarray(b["where"]).shape[-1]
    return reader_labels(readers.scoring("train"), exs, n, temperature=s.reader_temperature) * np.asarray(b["where"])

  def step_fn(state, b, step):
    del step  # the state counts its steps
    state, m = sft_step(state, *dp.shard((model_inputs(b), b["where"], labels(b), b["query_mask"])), key)
    return state, {k: float(v) for k, v in jax.device_get(m).items()}

  state, _ = loop.run(
      "sft",
      dp.replicate(host),
      iter(loader),
      step_fn,
      steps=s.steps,
      start=resumed,
      key=key,
      ckpt=ckpt,
      dp=dp,
      loader=loader,
      writer=writer,
      config=c,
      postfix=lambda m: {"loss": f"{m['loss']:.3f}"},
  )
  return restore.Snapshot(sharding.host_copy(dp, state).params, "sft", s.steps, sft_dir)
