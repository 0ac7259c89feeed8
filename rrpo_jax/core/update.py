"""The RRPO and warm-up update steps: typed rollout batch, train state, optimiser; and the scorer
(the forward pass without gradient that the rollout and the evaluation share).

One per-device function (state, batch, key) -> (state, metrics) uses collectives over the mesh axis
"data" and is wrapped once by sharding.DataParallel (jax.shard_map over a 1-D mesh, or its pmap
alternative: this module does not tell them apart). Device placement (replicate, shard, unreplicate,
the global-array helpers) is sharding.py's. make_update_step takes its settings as one RRPOConfig
(config.rrpo typed, the one the rollout gets; SFTConfig is config.sft's), built by the phase from
its config section by field name (this module imports no config code).
The loss is a sum over this device's valid steps divided by the global count of valid steps, and
gradients are psum-ed, so the update is the same on 1 device and on many (up to float summation
order). The advantage window is fed with the advantages of all devices (all_gather, device order =
global batch order), so every device holds the same window.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, TypeVar

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rax

from rrpo_jax.core import objective
from rrpo_jax.core import plackett_luce
from rrpo_jax.core.sharding import AXIS, BROADCAST, REPLICATED, SHARDED, DataParallel

Array = jax.Array

# --- the phases' settings: one frozen dataclass per config section, under its field names

_T = TypeVar("_T")


def _from_section(cls: type[_T], section: Mapping[str, Any]) -> _T:
  """cls from the section's values of cls's fields (a missing field raises KeyError; other fields of
  the section are not read here)."""
  return cls(**{f.name: section[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RRPOConfig:
  """config.rrpo, typed (see rrpo_jax/config for each field's meaning): the RRPO phase builds it once
  (from_config) and hands it whole to the rollout (train/rollout.py) and to make_update_step.

  The defaults are the plain objective's (tests, benchmarks): no KL term, gamma = lam = 1, one
  greedy sample; a run's values are config.rrpo's, whose defaults are the paper's guesses."""

  init_from: str = ""  # a checkpoint or HF directory RRPO starts from (the trainer's restore order)
  steps: int = 1
  batch_size: int = 1
  # rollout: selection of k actions, G samples per question, the ratio's reference log-probs
  k: int = 3
  temperature: float = 1.0  # Plackett-Luce temperature (rollout and update)
  selection: str = "greedy"
  samples: int = 1
  ref_mode: str = "eval"
  # update: advantages, window standardisation, clipped ratio + KL (objective.py's registries)
  advantage: str = "gae"
  gamma: float = 1.0
  lam: float = 1.0
  window: int = 256
  standardize: str = "mean_std"
  clip_eps: float = 0.2
  beta: float = 0.0
  kl_estimator: str = "log_ratio"
  loss: str = "clipped"
  # optimiser (update.make_optimizer)
  learning_rate: float = 1e-5
  warmup_steps: int = 0
  weight_decay: float = 0.01
  max_grad_norm: float | None = 1.0  # None: no clipping
  grad_accum: int = 1

  @classmethod
  def from_config(cls, section: Mapping[str, Any]) -> RRPOConfig:
    """From config.rrpo (a ConfigDict section, or any mapping with these field names)."""
    return _from_section(cls, section)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SFTConfig:
  """config.sft, typed: the supervised warm-up's settings (train/sft.py builds it once)."""

  steps: int = 0  # 0 = skipped
  batch_size: int = 1
  learning_rate: float = 2e-4
  warmup_steps: int = 0
  weight_decay: float = 0.01
  max_grad_norm: float | None = 1.0
  labels: str = "auto"  # train/batches.labels_for kinds, or "reader" (sft.reader_labels)
  reader_temperature: float = 0.1

  @classmethod
  def from_config(cls, section: Mapping[str, Any]) -> SFTConfig:
    """From config.sft (a ConfigDict section, or any mapping with these field names)."""
    return _from_section(cls, section)


@flax.struct.dataclass
class RolloutBatch:
  """One frozen rollout, built outside jit (host-local leading axis B).

  inputs: pytree with leaves [B, ...] (e.g. input_ids int32[B, N, L]) fed to apply_fn;
  where: bool[B, N] valid candidates; actions: int32[B, k] (-1 = no candidate), or int32[B, G, k]
  for G samples per question (rrpo.samples); ref_log_prob: float32[B, k] / [B, G, k] reference
  log pi on the same actions; rewards: float32[B, k] / [B, G, k]; values: float32[B, k]
  reference-greedy rewards; query_mask: bool[B] (False for padding queries and left-out groups).
  """

  inputs: Any
  where: Array
  actions: Array
  ref_log_prob: Array
  rewards: Array
  values: Array
  query_mask: Array


@flax.struct.dataclass
class TrainState:
  """step int32; params; opt_state (of the optax transform); window (objective.Window)."""

  step: Array
  params: Any
  opt_state: Any
  window: objective.Window

  @classmethod
  def create(cls, params, tx: optax.GradientTransformation, *, window_capacity: int) -> "TrainState":
    return cls(jnp.zeros((), jnp.int32), params, tx.init(params), objective.window_init(window_capacity))


def make_schedule(
    *, learning_rate: float, total_steps: int, warmup_steps: int = 0, end_learning_rate: float = 0.0
) -> optax.Schedule:
  """Linear warm-up 0 -> lr over warmup_steps, then linear decay to end_learning_rate at total_steps.

  Steps count optimiser updates (after gradient accumulation).
  """
  decay = optax.linear_schedule(learning_rate, end_learning_rate, max(total_steps - warmup_steps, 1))
  if warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def make_optimizer(
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_learning_rate: float = 0.0,
    weight_decay: float = 0.01,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    max_grad_norm: float | None = 1.0,
    accumulation_steps: int = 1,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  """AdamW with global-norm clipping and a linear warm-up/decay schedule, accumulated over
  `accumulation_steps` calls by optax.MultiSteps (clipping applies to the accumulated mean gradient).

  total_steps and warmup_steps count calls (batches); the schedule counts optimiser updates, so both
  are divided by accumulation_steps (rounded up): the rate reaches its peak after warmup_steps
  batches and end_learning_rate after total_steps batches, whatever the accumulation.
  """
  updates = lambda calls: -(-calls // accumulation_steps)  # noqa: E731  ceil division
  schedule = make_schedule(
      learning_rate=learning_rate,
      total_steps=updates(total_steps),
      warmup_steps=updates(warmup_steps),
      end_learning_rate=end_learning_rate,
  )
  parts = [] if max_grad_norm is None else [optax.clip_by_global_norm(max_grad_norm)]
  parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask))
  tx = optax.chain(*parts)
  if accumulation_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accumulation_steps)
  return tx


def optimizer_for(settings: RRPOConfig | SFTConfig) -> optax.GradientTransformation:
  """make_optimizer from a phase's typed settings: the same-named fields of RRPOConfig and SFTConfig
  (learning_rate, steps, warmup_steps, weight_decay, max_grad_norm; grad_accum where the phase has it)."""
  return make_optimizer(
      learning_rate=settings.learning_rate,
      total_steps=settings.steps,
      warmup_steps=settings.warmup_steps,
      weight_decay=settings.weight_decay,
      max_grad_norm=settings.max_grad_norm,
      accumulation_steps=getattr(settings, "grad_accum", 1),
  )


def _global_mean_std(x: Array, where: Array, n: Array) -> tuple[Array, Array]:
  """Mean and population std of x over `where` across all devices (n = global count)."""
  n = jnp.maximum(n, 1).astype(jnp.float32)
  mean = jax.lax.psum(jnp.sum(jnp.where(where, x, 0.0)), AXIS) / n
  var = jax.lax.psum(jnp.sum(jnp.where(where, jnp.square(x - mean), 0.0)), AXIS) / n
  return mean, jnp.sqrt(var)


def device_key(key_data: Array, step: Array) -> Array:
  """The per-device dropout key of a step, inside dp.map: fold_in(fold_in(key, step), device index).

  One derivation for the update steps and the trainer's training-mode scoring, so the policy that
  selects the actions and the policy that is differentiated draw the same dropout masks.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(key_data), step)
  return jax.random.fold_in(key, jax.lax.axis_index(AXIS))


def make_scorer(dp: DataParallel, apply_fn: Callable, *, train_mode: bool) -> Callable:
  """scores(params_repl, inputs, key_data, step) -> this process's float32[B, N] (host numpy): the
  forward pass on all devices, without gradient (the rollout's scoring, the evaluation's).

  params_repl: dp.replicate(params); inputs: host-local [B, ...] (B divisible by the local devices);
  train_mode: dropout from device_key(key_data, step), as the update step draws it.
  """

  def per_device(params, inputs, key_data, step):
    key = device_key(key_data, step) if train_mode else None
    return apply_fn(params, inputs, key=key)

  mapped = dp.map(per_device, in_specs=(REPLICATED, SHARDED, BROADCAST, BROADCAST), out_specs=SHARDED)

  def scores(params, inputs, key_data, step) -> np.ndarray:
    return dp.local_rows(mapped(params, dp.shard(inputs), key_data, np.int32(step)))

  return scores


def make_update_step(
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    dp: DataParallel,
    config: RRPOConfig | None = None,
    *,
    std_eps: float = 1e-8,
    **fields: Any,
) -> Callable:
  """The jitted data-parallel RRPO update: update(state, batch, key) -> (state, metrics).

  config: the RRPO settings (RRPOConfig: advantage, gamma, lam, standardize, clip_eps,
  beta, kl_estimator, loss, temperature are read here); fields: overrides of config's fields by
  name (tests, benchmarks: make_update_step(apply_fn, tx, dp, beta=0.01)).
  state: dp.replicate(TrainState) (donated); batch: dp.shard(RolloutBatch); key: a typed PRNG key,
  the same on every process. Per step: A = advantages(r, V) on valid steps
  (plackett_luce.valid_actions and not a padding query); window <- push(all devices' A);
  A^ = standardise(window, A) (objective.window_standardise, kind=standardize);
  loss = objective.loss(log_prob(apply_fn(params, inputs, key=k_d), actions), ref, A^) with the
  global valid-step count as normaliser (estimator `loss`, ratio clip clip_eps, KL kl_estimator
  weighted by beta); grads psum-ed; optax update. Dropout key k_d = fold_in(fold_in(key, step),
  device index).
  Metrics are replicated scalars: loss, surrogate, kl, clip_frac, ratio_{mean,min,max}, log_ratio_mean,
  adv_{mean,std} (raw), adv_norm_{mean,std} (standardised), zero_adv_frac (share of queries whose
  valid advantages are all 0), window_{mean,std,count}, reward_mean, value_mean, entropy
  (first-pick, mean over queries), grad_norm (before clipping), param_norm (after the update),
  valid_steps, queries.
  """
  r = dataclasses.replace(config or RRPOConfig(), **fields)
  # fail fast on bad names (ValueError naming the registered ones)
  objective.ADVANTAGES.get(r.advantage)
  objective.KL_ESTIMATORS.get(r.kl_estimator)
  objective.STANDARDIZERS.get(r.standardize)
  objective.LOSSES.get(r.loss)

  def per_device(state: TrainState, batch: RolloutBatch, key_data: Array):
    key = device_key(key_data, state.step)
    actions, rewards, values = batch.actions, batch.rewards, batch.values
    # G samples per question: actions [B, G, k] against scores [B, 1, N]; one sample keeps [B, k]
    # (a group estimator then sees a group of 1).
    grouped = actions.ndim == 3
    by_sample = lambda x: jnp.broadcast_to(x[:, None, :], actions.shape[:-1] + x.shape[-1:])  # [B, N] -> [B, G, N]
    where = by_sample(batch.where) if grouped else batch.where
    qmask = batch.query_mask[:, None, None] if grouped else batch.query_mask[:, None]
    if grouped:
      values = jnp.broadcast_to(values[:, None, :], rewards.shape)
    valid = plackett_luce.valid_actions(actions, where=where) & qmask
    if not grouped and r.advantage in objective.GROUPED:
      adv_raw = objective.advantages(
          rewards[:, None], values[:, None], kind=r.advantage, gamma=r.gamma, lam=r.lam, where=valid[:, None]
      )[:, 0]
    else:
      adv_raw = objective.advantages(rewards, values, kind=r.advantage, gamma=r.gamma, lam=r.lam, where=valid)
    all_adv = jax.lax.all_gather(adv_raw, AXIS, tiled=True)
    all_valid = jax.lax.all_gather(valid, AXIS, tiled=True)
    window = objective.window_push(state.window, all_adv, where=all_valid)
    adv = objective.window_standardise(window, adv_raw, where=valid, eps=std_eps, kind=r.standardize)
    n_steps = jax.lax.psum(jnp.sum(valid, dtype=jnp.int32), AXIS)
    n_queries = jax.lax.psum(jnp.sum(batch.query_mask, dtype=jnp.int32), AXIS)

    def loss_fn(params):
      scores = apply_fn(params, batch.inputs, key=key)
      lp = plackett_luce.log_prob(
          by_sample(scores) if grouped else scores, actions, temperature=r.temperature, where=where
      )
      value, diag = objective.loss(
          lp,
          batch.ref_log_prob,
          adv,
          where=valid,
          eps=r.clip_eps,
          beta=r.beta,
          kl=r.kl_estimator,
          estimator=r.loss,
          normalizer=n_steps,
      )
      ent = plackett_luce.entropy(jax.lax.stop_gradient(scores), temperature=r.temperature, where=batch.where)
      diag["entropy"] = jnp.sum(jnp.where(batch.query_mask, ent, 0.0)) / jnp.maximum(n_queries, 1)
      return value, diag

    (value, diag), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = jax.lax.psum(grads, AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    metrics = {name: jax.lax.psum(x, AXIS) for name, x in diag.items() if not name.endswith(("_max", "_min"))}
    metrics["loss"] = jax.lax.psum(value, AXIS)
    metrics["ratio_max"] = jax.lax.pmax(diag["ratio_max"], AXIS)
    ratio_min = jax.lax.pmin(diag["ratio_min"], AXIS)
    metrics["ratio_min"] = jnp.where(jnp.isfinite(ratio_min), ratio_min, 0.0)
    metrics["adv_mean"], metrics["adv_std"] = _global_mean_std(adv_raw, valid, n_steps)
    metrics["adv_norm_mean"], metrics["adv_norm_std"] = _global_mean_std(adv, valid, n_steps)
    zero = batch.query_mask & jnp.all(jnp.where(valid, adv_raw == 0.0, True), axis=tuple(range(1, adv_raw.ndim)))
    metrics["zero_adv_frac"] = jax.lax.psum(jnp.sum(zero), AXIS) / jnp.maximum(n_queries, 1)
    metrics["window_mean"], metrics["window_std"] = objective.window_stats(window)
    metrics["window_count"] = window.count
    metrics["reward_mean"], _ = _global_mean_std(batch.rewards, valid, n_steps)
    metrics["value_mean"], _ = _global_mean_std(values, valid, n_steps)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["param_norm"] = optax.tree.norm(params)
    metrics["valid_steps"] = n_steps
    metrics["queries"] = n_queries
    new_state = dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state, window=window)
    return new_state, metrics

  mapped = dp.map(
      per_device, in_specs=(REPLICATED, SHARDED, BROADCAST), out_specs=(REPLICATED, REPLICATED), donate_argnums=(0,)
  )

  def update(state: TrainState, batch: RolloutBatch, key: Array):
    state, metrics = mapped(state, batch, np.asarray(jax.random.key_data(key)))
    return state, dp.unreplicate(metrics)

  return update


def make_sft_step(apply_fn: Callable, tx: optax.GradientTransformation, dp: DataParallel) -> Callable:
  """The jitted data-parallel supervised warm-up step: step(state, inputs, where, labels, query_mask,
  key) -> (state, metrics).

  loss = sum over usable queries of rax.softmax_loss(scores, labels, where) / (global count of
  usable queries), usable = a real query with >= 1 valid positive label; scores =
  apply_fn(params, inputs, key=k_d) with dropout key k_d = fold_in(fold_in(key, step), device index)
  as in make_update_step; grads psum-ed; optax update. state: dp.replicate(TrainState) (donated);
  inputs [B, N, L], where / labels [B, N], query_mask [B]: dp.shard-ed. Metrics: loss, grad_norm
  (before clipping), param_norm (after the update), queries.
  """

  def per_device(state: TrainState, inputs, where, labels, query_mask, key_data: Array):
    key = device_key(key_data, state.step)
    usable = query_mask & jnp.any((labels > 0) & where, axis=-1)
    count = jnp.maximum(jax.lax.psum(jnp.sum(usable), AXIS), 1).astype(jnp.float32)

    def loss_fn(params):
      scores = apply_fn(params, inputs, key=key)
      per_query = rax.softmax_loss(scores, labels, where=where, reduce_fn=None)
      return jnp.sum(jnp.where(usable, per_query, 0.0)) / count

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grads = jax.lax.psum(grads, AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": jax.lax.psum(loss, AXIS),
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
        "queries": count,
    }
    return dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state), metrics

  mapped = dp.map(
      per_device,
      in_specs=(REPLICATED,) + (SHARDED,) * 4 + (BROADCAST,),
      out_specs=(REPLICATED, REPLICATED),
      donate_argnums=(0,),
  )

  def step(state: TrainState, inputs, where, labels, query_mask, key: Array):
    state, metrics = mapped(state, inputs, where, labels, query_mask, np.asarray(jax.random.key_data(key)))
    return state, dp.unreplicate(metrics)

  return step
