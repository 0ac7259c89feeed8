"""Data-parallel update step: 1 vs 8 fake CPU devices, shard_map vs pmap, exact gradients, optimiser."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rrpo_jax.core import objective
from rrpo_jax.core import plackett_luce as pl
from rrpo_jax.core import sharding
from rrpo_jax.core import update as U
from rrpo_jax.core.update import RRPOConfig, SFTConfig

B, N, K, F = 16, 6, 3, 4


def linear_scorer(params, inputs, *, key):
  """s[b, n] = features[b, n] . w (no bias: a shift does not change Plackett-Luce probabilities)."""
  del key
  return inputs["features"] @ params["w"]


def make_batch(seed=0, ref_params=None):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(B, N, F)).astype(np.float32)
  where = rng.random((B, N)) > 0.2
  where[3] = False  # a query with no valid candidate
  where[5, 2:] = False  # 2 valid candidates < k
  ref_params = ref_params or {"w": jnp.asarray(rng.normal(size=F), jnp.float32)}
  ref_scores = linear_scorer(ref_params, {"features": features}, key=None)
  actions = np.asarray(pl.sample(ref_scores, key=jax.random.key(seed), k=K, where=where))
  rewards = rng.random((B, K)).astype(np.float32)
  values = rng.random((B, K)).astype(np.float32)
  values[7] = rewards[7]  # policy reward = reference reward: zero advantage under "ref_diff"
  query_mask = np.arange(B) < B - 2  # two padding queries
  return (
      U.RolloutBatch(
          inputs={"features": features},
          where=where,
          actions=actions,
          ref_log_prob=np.asarray(pl.log_prob(ref_scores, actions, where=where)),
          rewards=rewards,
          values=values,
          query_mask=query_mask,
      ),
      ref_params,
  )


def run(kind, devices, *, steps=3, accumulation_steps=1, tx=None, **kw):
  batch, params = make_batch()
  tx = tx or U.make_optimizer(learning_rate=0.05, total_steps=10, warmup_steps=2, accumulation_steps=accumulation_steps)
  dp = sharding.DataParallel(kind, devices)
  state = dp.replicate(U.TrainState.create({"w": params["w"] + 0.3}, tx, window_capacity=40))
  step = U.make_update_step(linear_scorer, tx, dp, beta=0.05, gamma=0.9, lam=0.95, **kw)
  history = []
  for i in range(steps):
    state, metrics = step(state, dp.shard(batch), jax.random.key(i))
    history.append(jax.tree.map(float, metrics))
  return dp.unreplicate(state), history


@pytest.fixture(scope="module")
def reference_run():
  # 5 calls with accumulation 2: optimiser updates at calls 2 (warm-up lr 0) and 4 (lr 0.025).
  return run("shard_map", jax.devices()[:1], steps=5, accumulation_steps=2)


@pytest.mark.parametrize("kind,n_dev", [("shard_map", 8), ("pmap", 1), ("pmap", 8)])
def test_same_update_on_1_and_8_devices_shard_map_and_pmap(reference_run, kind, n_dev):
  assert len(jax.devices()) == 8, "conftest must set 8 fake CPU devices"
  (state1, hist1), (state, hist) = reference_run, run(kind, jax.devices()[:n_dev], steps=5, accumulation_steps=2)
  np.testing.assert_allclose(state.params["w"], state1.params["w"], atol=1e-6)
  assert np.abs(state1.params["w"] - (make_batch()[1]["w"] + 0.3)).max() > 1e-3  # it did move
  np.testing.assert_allclose(state.window.buffer, state1.window.buffer, atol=1e-6)
  assert int(state.step) == int(state1.step) == 5
  for m, m1 in zip(hist, hist1):
    for name in m1:
      assert m[name] == pytest.approx(m1[name], rel=1e-5, abs=1e-6), name


def test_gradient_is_the_global_mean_gradient():
  # With SGD(lr=1) one step gives params - grad; the gradient must be that of the loss over the
  # whole batch (sum over all valid steps / their total count), whatever the device count.
  batch, _ = make_batch()
  init = {"w": make_batch()[1]["w"] + 0.3}
  valid = (
      (batch.actions >= 0)
      & batch.query_mask[:, None]
      & np.take_along_axis(batch.where, np.clip(batch.actions, 0, N - 1), axis=-1)
  )

  @jax.jit
  def standardised(rewards, values):
    adv_raw = objective.advantages(rewards, values, kind="gae", gamma=0.9, lam=0.95, where=valid)
    window = objective.window_push(objective.window_init(40), adv_raw, where=valid)
    return objective.window_standardise(window, adv_raw, where=valid)

  adv = standardised(batch.rewards, batch.values)

  def full_loss(p):
    lp = pl.log_prob(linear_scorer(p, batch.inputs, key=None), batch.actions, where=batch.where)
    return objective.loss(lp, batch.ref_log_prob, adv, where=valid, beta=0.05)[0]

  full_loss = jax.jit(full_loss)
  expected = init["w"] - jax.jit(jax.grad(full_loss))(init)["w"]
  for devices in (jax.devices()[:1], jax.devices()):
    dp = sharding.DataParallel("shard_map", devices)
    tx = optax.sgd(1.0)
    state = dp.replicate(U.TrainState.create(init, tx, window_capacity=40))
    state, metrics = U.make_update_step(linear_scorer, tx, dp, beta=0.05, gamma=0.9, lam=0.95)(
        state, dp.shard(batch), jax.random.key(0)
    )
    np.testing.assert_allclose(dp.unreplicate(state.params)["w"], expected, atol=1e-6)
    assert float(metrics["loss"]) == pytest.approx(float(full_loss(init)), rel=1e-5)
    assert float(metrics["valid_steps"]) == float(valid.sum())
    assert float(metrics["window_count"]) == float(valid.sum())


def test_metrics_content():
  _, hist = run("shard_map", jax.devices(), steps=1, advantage="ref_diff")
  m = hist[0]
  expected = {
      "loss",
      "surrogate",
      "kl",
      "clip_frac",
      "ratio_mean",
      "ratio_min",
      "ratio_max",
      "log_ratio_mean",
      "adv_mean",
      "adv_std",
      "adv_norm_mean",
      "adv_norm_std",
      "zero_adv_frac",
      "window_mean",
      "window_std",
      "window_count",
      "reward_mean",
      "value_mean",
      "entropy",
      "grad_norm",
      "param_norm",
      "valid_steps",
      "queries",
  }
  assert expected <= set(m)
  assert all(np.isfinite(v) for v in m.values())
  # 14 real queries, one (row 3) has no valid step and one (row 7) has r = V: 2 / 14 all-zero.
  assert m["queries"] == 14 and m["zero_adv_frac"] == pytest.approx(2 / 14)
  # first step: the window holds exactly this batch, so standardised advantages have mean 0, std ~1.
  assert m["adv_norm_mean"] == pytest.approx(0.0, abs=1e-5) and m["adv_norm_std"] == pytest.approx(1.0, rel=1e-4)
  assert 0.0 <= m["clip_frac"] <= 1.0 and m["ratio_min"] <= m["ratio_mean"] <= m["ratio_max"]


def test_state_is_donated():
  batch, params = make_batch()
  dp = sharding.DataParallel("shard_map", jax.devices())
  tx = optax.sgd(0.1)
  state = dp.replicate(U.TrainState.create(params, tx, window_capacity=8))
  step = U.make_update_step(linear_scorer, tx, dp)
  new_state, _ = step(state, dp.shard(batch), jax.random.key(0))
  assert state.params["w"].is_deleted() and not new_state.params["w"].is_deleted()
  assert not params["w"].is_deleted()  # replicate copies: the caller's arrays survive


def test_schedule_and_accumulation():
  sched = U.make_schedule(learning_rate=1.0, total_steps=10, warmup_steps=2)
  # warm-up 0 -> 1 over 2 steps, then linear decay 1 -> 0 over the remaining 8.
  np.testing.assert_allclose([sched(i) for i in (0, 1, 2, 6, 10)], [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-7)
  tx = U.make_optimizer(learning_rate=0.1, total_steps=10, accumulation_steps=2, weight_decay=0.0)
  params = {"w": jnp.ones(3)}
  opt_state = tx.init(params)
  g1, g2 = {"w": jnp.array([1.0, 0.0, 0.0])}, {"w": jnp.array([0.0, 3.0, 0.0])}
  upd, opt_state = tx.update(g1, opt_state, params)
  np.testing.assert_array_equal(upd["w"], 0.0)  # accumulating: no update yet
  upd, opt_state = tx.update(g2, opt_state, params)
  # mean gradient (0.5, 1.5, 0) has norm sqrt(2.5) > 1: clipped to norm 1; Adam's first step moves
  # each coordinate with a non-zero gradient by lr * sign = 0.1 * 1 (first step of decay: lr(0) = 0.1).
  np.testing.assert_allclose(upd["w"], [-0.1, -0.1, 0.0], rtol=1e-4)


def test_schedule_counts_batches_under_accumulation():
  """8 batches with accumulation 4 = 2 optimiser updates, warm-up over 4 batches = 1 update: the
  schedule is 0 at update 0 (warm-up start) and the peak 1.0 at update 1. Adam with a constant
  gradient moves by exactly the rate, so the non-zero updates are [1.0]. A schedule counting
  batches as updates (8 total, 4 warm-up) would still be warming up: [0.25]."""
  tx = U.make_optimizer(
      learning_rate=1.0, total_steps=8, warmup_steps=4, accumulation_steps=4, weight_decay=0.0, max_grad_norm=None
  )
  params = {"w": jnp.zeros(1)}
  opt_state = tx.init(params)
  seen = []
  for _ in range(8):
    upd, opt_state = tx.update({"w": jnp.ones(1)}, opt_state, params)
    if float(upd["w"][0]) != 0.0:
      seen.append(-float(upd["w"][0]))
  np.testing.assert_allclose(seen, [1.0], rtol=1e-4)  # Adam eps and float32 rounding


def test_optimizer_for_reads_each_phase_s_settings():
  """RRPOConfig accumulates over grad_accum batches; SFTConfig has no such field and updates every
  batch; both with their own rate, schedule and clipping (the same chain as make_optimizer's)."""
  rrpo = U.RRPOConfig(learning_rate=1.0, steps=8, warmup_steps=4, weight_decay=0.0, max_grad_norm=None, grad_accum=4)
  sft = U.SFTConfig(learning_rate=0.5, steps=4, weight_decay=0.0, max_grad_norm=None)
  seen = {}
  for name, settings in (("rrpo", rrpo), ("sft", sft)):
    tx, params = U.optimizer_for(settings), {"w": jnp.zeros(1)}
    opt_state, seen[name] = tx.init(params), []
    for _ in range(settings.steps):
      upd, opt_state = tx.update({"w": jnp.ones(1)}, opt_state, params)
      seen[name].append(-float(upd["w"][0]))
  np.testing.assert_allclose(seen["rrpo"], [0, 0, 0, 0, 0, 0, 0, 1.0], atol=1e-4)  # as the test above
  np.testing.assert_allclose(seen["sft"], [0.5, 0.375, 0.25, 0.125], rtol=1e-4)  # linear decay from the peak


def test_data_parallel_map_for_scoring_and_sft():
  batch, params = make_batch()
  full = np.asarray(linear_scorer(params, batch.inputs, key=None))
  for kind in ("shard_map", "pmap"):
    dp = sharding.DataParallel(kind, jax.devices())
    score = dp.map(
        functools.partial(linear_scorer, key=None),
        in_specs=(sharding.REPLICATED, sharding.SHARDED),
        out_specs=sharding.SHARDED,
    )
    out = np.asarray(score(dp.replicate(params), dp.shard(batch.inputs)))
    np.testing.assert_allclose(out.reshape(full.shape), full, rtol=1e-6)

    # a supervised-style step: global mean over the batch with a broadcast scalar.
    def mean_times(p, x, c):
      return jax.lax.psum(jnp.sum(linear_scorer(p, x, key=None)), sharding.AXIS) * c

    f = dp.map(
        mean_times, in_specs=(sharding.REPLICATED, sharding.SHARDED, sharding.BROADCAST), out_specs=sharding.REPLICATED
    )
    got = dp.unreplicate(f(dp.replicate(params), dp.shard(batch.inputs), np.float32(2.0)))
    assert float(got) == pytest.approx(2 * full.sum(), rel=1e-5)
    # scoring as the rollout and the evaluation do: this process's rows, in batch order, either kind
    scores = U.make_scorer(dp, linear_scorer, train_mode=False)
    np.testing.assert_allclose(
        scores(dp.replicate(params), batch.inputs, np.zeros((2,), np.uint32), 0), full, rtol=1e-6
    )


def test_pmap_is_the_one_alternative_of_data_parallel():
  assert type(sharding.DataParallel()) is sharding.DataParallel
  assert type(sharding.DataParallel("shard_map", jax.devices()[:2])).kind == "shard_map"
  pmapped = sharding.DataParallel("pmap", jax.devices()[:2])
  assert isinstance(pmapped, sharding.PmapDataParallel) and pmapped.kind == "pmap" and pmapped.size == 2
  with pytest.raises(ValueError, match="parallel kind"):
    sharding.DataParallel("vmap")


def test_settings_mirror_the_config_sections():
  """RRPOConfig / SFTConfig hold config.rrpo's / config.sft's fields under the same names, and
  from_config reads a run's values into them (the phases build them once)."""
  import dataclasses  # pylint: disable=import-outside-toplevel

  from rrpo_jax.config import get_config  # pylint: disable=import-outside-toplevel

  c = get_config()
  for cls, section in ((RRPOConfig, c.rrpo), (SFTConfig, c.sft)):
    assert {f.name for f in dataclasses.fields(cls)} == set(section.keys()), cls.__name__
    typed = cls.from_config(section)
    assert all(getattr(typed, name) == section[name] for name in section.keys())
  with pytest.raises(dataclasses.FrozenInstanceError):
    RRPOConfig.from_config(c.rrpo).beta = 1.0  # type: ignore[misc]


def test_update_settings_are_the_config_names():
  """make_update_step reads RRPOConfig's fields (clip_eps, kl_estimator, loss): the same update
  whether they come as a settings object or as overrides by name."""
  batch, params = make_batch()
  dp = sharding.DataParallel("shard_map", jax.devices()[:1])
  tx = optax.sgd(0.1)
  settings = RRPOConfig(clip_eps=0.1, beta=0.2, kl_estimator="k3", loss="reinforce", gamma=0.9, lam=0.5)
  out = []
  for step in (
      U.make_update_step(linear_scorer, tx, dp, settings),
      U.make_update_step(
          linear_scorer, tx, dp, clip_eps=0.1, beta=0.2, kl_estimator="k3", loss="reinforce", gamma=0.9, lam=0.5
      ),
      U.make_update_step(
          linear_scorer,
          tx,
          dp,
          RRPOConfig(beta=0.2),
          clip_eps=0.1,
          kl_estimator="k3",
          loss="reinforce",
          gamma=0.9,
          lam=0.5,
      ),
  ):
    state = dp.replicate(U.TrainState.create(params, tx, window_capacity=8))
    out.append(jax.tree.map(float, step(state, dp.shard(batch), jax.random.key(0))[1]))
  assert out[0] == out[1] == out[2]
  default = U.make_update_step(linear_scorer, tx, dp)
  state = dp.replicate(U.TrainState.create(params, tx, window_capacity=8))
  assert float(default(state, dp.shard(batch), jax.random.key(0))[1]["loss"]) != out[0]["loss"]
  with pytest.raises(TypeError):
    U.make_update_step(linear_scorer, tx, dp, eps=0.1)  # the objective's name, not the config's


def test_shard_rejects_indivisible_batch():
  dp = sharding.DataParallel("pmap", jax.devices())
  with pytest.raises(ValueError, match="divisible"):
    dp.shard({"x": np.zeros((12, 2))})
  with pytest.raises(ValueError):
    U.make_update_step(linear_scorer, optax.sgd(1.0), dp, advantage="nope")


def test_sft_step_same_on_1_and_8_devices_and_the_global_listwise_loss():
  batch, params = make_batch()
  labels = (np.random.default_rng(1).random((B, N)) > 0.6).astype(np.float32)
  labels[4] = 0.0  # no positive: not usable, contributes nothing
  tx = U.make_optimizer(learning_rate=0.05, total_steps=10, warmup_steps=0)
  start = {"w": params["w"] + 0.3}
  out = {}
  for kind, n_dev in (("shard_map", 1), ("shard_map", 8), ("pmap", 8)):
    dp = sharding.DataParallel(kind, jax.devices()[:n_dev])
    state = dp.replicate(U.TrainState.create(start, tx, window_capacity=1))
    step = U.make_sft_step(linear_scorer, tx, dp)
    args = dp.shard((batch.inputs, batch.where, labels, batch.query_mask))
    state, m = step(state, *args, jax.random.key(0))
    out[kind, n_dev] = (np.asarray(dp.unreplicate(state).params["w"]), jax.tree.map(float, m))
  w1, m1 = out["shard_map", 1]
  for w, m in out.values():
    np.testing.assert_allclose(w, w1, atol=1e-6)
    for name in m1:
      assert m[name] == pytest.approx(m1[name], rel=1e-5, abs=1e-6), name
  # The loss is the mean listwise softmax loss over usable queries (real, with a valid positive).
  usable = batch.query_mask & np.any((labels > 0) & batch.where, axis=-1)
  scores = linear_scorer(start, batch.inputs, key=None)
  import rax  # pylint: disable=import-outside-toplevel

  per_query = np.asarray(rax.softmax_loss(scores, labels, where=batch.where, reduce_fn=None))
  assert m1["queries"] == usable.sum() and m1["loss"] == pytest.approx(per_query[usable].mean(), rel=1e-5)
  assert np.abs(w1 - np.asarray(start["w"])).max() > 1e-3
