"""The orbax wrapper: exact round trip of the training state, retention (latest N + best), params-only reads."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax.core import update


def _state(seed=0):
  params = {"dense": {"kernel": jax.random.normal(jax.random.key(seed), (3, 2)), "bias": jnp.arange(2.0)}}
  tx = update.make_optimizer(learning_rate=1e-2, total_steps=10, warmup_steps=2)
  state = update.TrainState.create(params, tx, window_capacity=5)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, opt_state = tx.update(grads, state.opt_state, params)
  return jax.tree.map(
      np.asarray,
      state.replace(step=jnp.int32(1), opt_state=opt_state, params=jax.tree.map(lambda p, u: p + u, params, updates)),
  )


def test_round_trip_is_exact(tmp_path):
  state, key = _state(), jax.random.key(7)
  ck = ckpt_lib.Checkpointer(str(tmp_path / "rrpo"), keep=2, async_save=True)
  extra = {"data": {"epoch": 1, "step": 3}, "reference": {"path": "/x"}}
  ck.save(4, {"train": state, "rng": ckpt_lib.key_to_data(key)}, extra)
  ck.close()
  ck = ckpt_lib.Checkpointer(str(tmp_path / "rrpo"), keep=2)
  target = {"train": _state(seed=1), "rng": ckpt_lib.key_to_data(jax.random.key(0))}
  restored, got_extra, step = ck.restore(target)
  assert step == 4 and got_extra == extra
  for a, b in zip(jax.tree.leaves(restored["train"]), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), b)
  assert jax.tree.structure(restored["train"]) == jax.tree.structure(state)
  assert np.array_equal(jax.random.key_data(ckpt_lib.key_from_data(restored["rng"])), jax.random.key_data(key))
  np.testing.assert_array_equal(ck.restore_params()["dense"]["kernel"], state.params["dense"]["kernel"])
  assert ck.restore_extra() == extra
  ck.close()
  assert ckpt_lib.is_checkpoint_dir(str(tmp_path / "rrpo")) and not ckpt_lib.is_checkpoint_dir(str(tmp_path))


def test_keeps_latest_n_and_best(tmp_path):
  ck = ckpt_lib.Checkpointer(str(tmp_path / "c"), keep=2, best_metric="policy_f1", async_save=False)
  f1 = {2: 30.0, 4: 50.0, 6: 10.0}
  for step in range(1, 8):
    metrics = {"policy_f1": f1[step]} if step in f1 else None
    ck.save(step, {"x": np.full((2,), step, np.float32)}, {"step": step}, metrics=metrics)
  ck.wait()
  assert ck.all_steps() == [4, 6, 7]  # latest two + the best (step 4, F1 50)
  assert ck.best_step() == 4 and ck.latest_step() == 7
  ck.close()
  plain = ckpt_lib.Checkpointer(str(tmp_path / "d"), keep=1, async_save=False)
  plain.save(1, {"x": np.zeros(1)}, {})
  plain.save(2, {"x": np.ones(1)}, {})
  assert plain.all_steps() == [2] and plain.best_step() == 2  # no metric: best = latest
  plain.close()


def test_frozen_params(tmp_path):
  params = _state().params
  ckpt_lib.save_params(str(tmp_path / "ref"), params)
  back = ckpt_lib.load_params(str(tmp_path / "ref"))
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  assert os.path.isdir(tmp_path / "ref")
