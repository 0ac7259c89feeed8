"""One RRPO rollout: score and select without gradient, ask the reader, build the frozen batch.

  (a) score the batch with the frozen reference (eval mode) and the training-mode policy (its
      dropout key is the update's, update.device_key), select the reference's greedy top-k and the
      policy's k actions, and log pi_ref of those actions (plackett_luce);
  (b) the reader scores the k prefixes of both (outside jit; cached, deduplicated: scoring.py);
  (c) the RolloutBatch the update step consumes (a query whose reader calls failed leaves the
      update), and the step's RL diagnostics and reader accounting over every process's queries.
make_rollout(config, ...) returns rollout(state_params, batch, step) -> (RolloutBatch, diagnostics);
config is the phase's update.RRPOConfig, the one the update step gets. The forward passes are
update.make_scorer's (the evaluation's too); the reader's accounting is summed over the processes by
scoring.all_hosts_stats.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rrpo_jax.core import plackett_luce
from rrpo_jax.core import sharding
from rrpo_jax.core import update as update_lib
from rrpo_jax.core.sharding import DataParallel
from rrpo_jax.core.update import RRPOConfig, make_scorer
from rrpo_jax.train.batches import model_inputs
from rrpo_jax.train.scoring import ScoreResult, ScoringStep, all_hosts_stats

# The selection key of step s on process p is fold_in(fold_in(key, s), p + SELECTION_STREAM). The
# dropout keys are fold_in(fold_in(key, s'), device index) (update.device_key): the offset keeps the
# two streams apart for any number of devices below it.
SELECTION_STREAM = 7919


def select(ref_scores, pol_scores, ref_lp_scores, where, key, *, k, selection, temperature, samples=1):
  """Reference greedy top-k [B, k], the policy's actions ([B, k]; [B, G, k] for samples G > 1: G
  independent Plackett-Luce samples per question) and log pi_ref of those actions under ref_lp_scores."""
  ref_topk = plackett_luce.greedy(ref_scores, k=k, where=where)
  if samples > 1:
    by_sample = lambda x: jnp.broadcast_to(x[:, None, :], x.shape[:1] + (samples,) + x.shape[1:])  # noqa: E731
    actions = plackett_luce.sample(by_sample(pol_scores), key=key, k=k, temperature=temperature, where=by_sample(where))
    ref_lp = plackett_luce.log_prob(by_sample(ref_lp_scores), actions, temperature=temperature, where=by_sample(where))
    return ref_topk, actions, ref_lp
  if selection == "sample":
    actions = plackett_luce.sample(pol_scores, key=key, k=k, temperature=temperature, where=where)
  else:
    actions = plackett_luce.greedy(pol_scores, k=k, where=where)
  ref_lp = plackett_luce.log_prob(ref_lp_scores, actions, temperature=temperature, where=where)
  return ref_topk, actions, ref_lp


def make_rollout(
    config: RRPOConfig,
    *,
    dp: DataParallel,
    apply_fn: Callable,
    ref_params_repl: Any,
    key: jax.Array,
    scoring: ScoringStep,
) -> Callable:
  """rollout(policy_params_repl, batch, step) -> (RolloutBatch, diagnostics) under `config` (the
  RRPO settings the update step gets too: k, samples, selection, temperature, ref_mode are read here).

  batch: a Loader batch (examples, query_mask, where, token arrays); step: 1-based RRPO step.
  """
  r = config
  k = r.k
  score_eval = make_scorer(dp, apply_fn, train_mode=False)
  score_train = make_scorer(dp, apply_fn, train_mode=True)
  select_jit = jax.jit(select, static_argnames=("k", "selection", "temperature", "samples"))
  g = r.samples
  key_data = np.asarray(jax.random.key_data(key))

  def rollout(policy_params, b: dict, step: int) -> tuple[update_lib.RolloutBatch, dict]:
    t0 = time.perf_counter()
    inputs, where, qmask = model_inputs(b), b["where"], b["query_mask"]
    exs = [ex if keep else None for ex, keep in zip(b["examples"], qmask)]
    # (a) score and select, no gradient. The policy's dropout key matches the update's (state.step = step - 1).
    ref_scores = score_eval(ref_params_repl, inputs, key_data, step - 1)
    pol_scores = score_train(policy_params, inputs, key_data, step - 1)
    # The ratio's denominator: the reference as it selects (eval mode), or under the policy's own
    # dropout masks (rrpo.ref_mode="same_dropout": rho = 1 exactly while the params are equal).
    ref_lp_scores = ref_scores if r.ref_mode == "eval" else score_train(ref_params_repl, inputs, key_data, step - 1)
    sel_key = jax.random.fold_in(jax.random.fold_in(key, step), jax.process_index() + SELECTION_STREAM)
    ref_topk, actions, ref_lp = jax.device_get(
        select_jit(
            jnp.asarray(ref_scores),
            jnp.asarray(pol_scores),
            jnp.asarray(ref_lp_scores),
            jnp.asarray(where),
            sel_key,
            k=k,
            selection=r.selection,
            temperature=r.temperature,
            samples=g,
        )
    )
    t1 = time.perf_counter()
    if g > 1:
      batch, diagnostics = _grouped(
          scoring, exs, inputs, where, qmask, ref_topk, actions, ref_lp, ref_scores, pol_scores
      )
      diagnostics.update(time_score=t1 - t0, time_reader=time.perf_counter() - t1)
      return batch, diagnostics
    # (b) the reader scores both prefixes (outside jit; cached)
    scored = scoring.score(exs, ref_topk, actions)
    t2 = time.perf_counter()
    # (c) a query whose reader calls failed carries no signal: it leaves the update (not a reward of 0).
    # RolloutBatch's fields are typed as the update step sees them (jax.Array); on the host they are
    # numpy arrays until DataParallel.shard places them (hence the ignores).
    batch = update_lib.RolloutBatch(
        inputs=inputs,
        where=where,
        actions=np.asarray(actions, np.int32),  # type: ignore[arg-type]
        ref_log_prob=np.asarray(ref_lp, np.float32),  # type: ignore[arg-type]
        rewards=scored.rewards.astype(np.float32),  # type: ignore[arg-type]
        values=scored.values.astype(np.float32),  # type: ignore[arg-type]
        query_mask=np.asarray(qmask, bool) & scored.ok,
    )
    diagnostics = all_hosts_diagnostics(scored, ref_scores, pol_scores, where, ref_topk, actions, qmask, k)
    diagnostics.update(time_score=t1 - t0, time_reader=t2 - t1)
    return batch, diagnostics

  def _grouped(scoring, exs, inputs, where, qmask, ref_topk, actions, ref_lp, ref_scores, pol_scores):
    """(b) and (c) for G samples per question: the B*G episodes are scored as rows (each query's
    reference once: the value memo), and a group whose G rewards all equal the reference's at every
    step leaves the update (no sample differs from the baseline: DAPO's dynamic sampling), counted
    as tied_group_frac."""
    b = actions.shape[0]
    rep = lambda x: np.repeat(np.asarray(x), g, axis=0)  # noqa: E731  [B, ...] -> [B*G, ...]
    scored = scoring.score([ex for ex in exs for _ in range(g)], rep(ref_topk), np.asarray(actions).reshape(b * g, k))
    rewards = scored.rewards.reshape(b, g, k).astype(np.float32)
    values = scored.values.reshape(b, g, k)[:, 0].astype(np.float32)
    ok = np.asarray(scored.ok, bool).reshape(b, g).all(axis=1)
    tied = np.all(rewards == values[:, None, :], axis=(1, 2)) & np.asarray(qmask, bool) & ok
    batch = update_lib.RolloutBatch(  # numpy fields on the host, as above
        inputs=inputs,
        where=where,
        actions=np.asarray(actions, np.int32),  # type: ignore[arg-type]
        ref_log_prob=np.asarray(ref_lp, np.float32),  # type: ignore[arg-type]
        rewards=rewards,
        values=values,
        query_mask=np.asarray(qmask, bool) & ok & ~tied,
    )
    diagnostics = all_hosts_diagnostics(
        scored,
        rep(ref_scores),
        rep(pol_scores),
        rep(where),
        rep(ref_topk),
        batch.actions.reshape(b * g, k),
        rep(qmask),
        k,
    )
    counts = sharding.all_hosts_rows(
        {"tied": tied.astype(np.float64)[None], "real": np.asarray(qmask, np.float64)[None]}
    )
    real = counts["real"].sum()
    diagnostics["tied_group_frac"] = float(counts["tied"].sum() / real) if real else 0.0
    return batch, diagnostics

  return rollout


def kendall_tau(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
  """Kendall tau-a between two score vectors over valid candidates (numpy, O(N^2))."""
  a, b = a[where], b[where]
  if a.size < 2:
    return 1.0
  da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
  iu = np.triu_indices(a.size, 1)
  return float(np.mean(da[iu] * db[iu]))


def all_hosts_diagnostics(scored: ScoreResult, ref_scores, pol_scores, where, ref_topk, actions, qmask, k) -> dict:
  """rl_diagnostics and the reader's accounting (reader_<counter>) of the whole step: over every
  process's queries and summed reader counts on several processes (a collective, as the update is),
  so the metrics row host 0 writes speaks for the run. Arguments: this process's rows [b, ...]."""
  ok = np.ones(len(qmask), bool) if scored.ok is None else np.asarray(scored.ok, bool)
  rows = sharding.all_hosts_rows(
      {
          "rewards": scored.rewards,
          "values": scored.values,
          "terms": scored.terms,
          "ok": ok,
          "ref_scores": np.asarray(ref_scores),
          "pol_scores": np.asarray(pol_scores),
          "where": np.asarray(where, bool),
          "ref_topk": np.asarray(ref_topk),
          "actions": np.asarray(actions),
          "qmask": np.asarray(qmask, bool),
      }
  )
  every = dataclasses.replace(
      scored, rewards=rows["rewards"], values=rows["values"], terms=rows["terms"], ok=rows["ok"], answers=[]
  )
  out = rl_diagnostics(
      every, rows["ref_scores"], rows["pol_scores"], rows["where"], rows["ref_topk"], rows["actions"], rows["qmask"], k
  )
  out.update({f"reader_{name}": v for name, v in all_hosts_stats(scored.stats).items()})
  return out


def rl_diagnostics(scored: ScoreResult, ref_scores, pol_scores, where, ref_topk, actions, qmask, k) -> dict:
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
