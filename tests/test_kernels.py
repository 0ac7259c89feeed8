"""The kernel sets (rrpo_jax/core/kernels.py, cpu_kernels.py): the one switch (config.kernels ->
cpu_kernels.select, applied by the trainer), and the library path, forced here with
kernels.using(kernels.LIBRARY), giving valid results with the same laws. The other tests run the set
the trainer would choose (tests/conftest.py: the CPU kernels on the CPU backend)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrpo_jax.core import cpu_kernels
from rrpo_jax.core import kernels
from rrpo_jax.core import plackett_luce as pl
from rrpo_jax.errors import ConfigError
from rrpo_jax.models import cross_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_select_and_using():
  on_cpu = jax.default_backend() == "cpu"
  assert cpu_kernels.select("auto") is (cpu_kernels.CPU if on_cpu else kernels.LIBRARY)
  assert cpu_kernels.select("cpu") is cpu_kernels.CPU
  assert cpu_kernels.select("library") is kernels.LIBRARY
  with pytest.raises(ConfigError, match=r"config\.kernels: must be 'auto', 'cpu' or 'library', got 'gpu'"):
    cpu_kernels.select("gpu")
  before = kernels.active()
  assert before is cpu_kernels.select("auto")  # tests/conftest.py: as the entry point
  with kernels.using(kernels.LIBRARY) as k:
    assert k is kernels.active() is kernels.LIBRARY
    with kernels.using(cpu_kernels.CPU):
      assert kernels.active() is cpu_kernels.CPU
    assert kernels.active() is kernels.LIBRARY
  assert kernels.active() is before


def test_the_trainer_applies_config_kernels(monkeypatch, tmp_path):
  from rrpo_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from rrpo_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from rrpo_jax.train import trainer  # pylint: disable=import-outside-toplevel

  seen = []
  monkeypatch.setattr(trainer, "_train_and_evaluate", lambda config, workdir: seen.append(kernels.active().name))
  config = config_lib.get_config()
  with kernels.using(kernels.active()):  # the state the trainer sets is put back after the test
    for choice in ("library", "cpu"):
      config.kernels = choice  # as --config.kernels=<choice>
      trainer.train_and_evaluate(config, str(tmp_path))
      assert seen[-1] == choice
    config.kernels = "gpu"
    with pytest.raises(ConfigError, match="config.kernels"):
      trainer.train_and_evaluate(config, str(tmp_path))
  assert len(seen) == 2


def test_cpu_kernels_match_the_library_where_they_must():
  x = jnp.array([[0.5, -1.0, 3.0, 2.0], [-jnp.inf, -2.0, -3.0, -jnp.inf], [-0.0, -1e-30, -5.0, -jnp.inf]])
  for keepdims in (False, True):
    np.testing.assert_array_equal(cpu_kernels.max_last(x, keepdims), kernels.max_last(x, keepdims))
  x64 = np.array([[1e300, -1e-300, 2.0]])
  with jax.enable_x64(True):
    np.testing.assert_array_equal(cpu_kernels.max_last(jnp.asarray(x64)), kernels.max_last(jnp.asarray(x64)))
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.standard_normal((2, 3, 4, 5)), jnp.float32) for _ in range(2))
  np.testing.assert_array_equal(
      cpu_kernels.batched_matmul(a, b, transpose_b=True), kernels.batched_matmul(a, b, transpose_b=True)
  )
  logits = jnp.asarray(rng.standard_normal((2, 8)), jnp.float32)
  for fn in (cpu_kernels.softmax_dropout, kernels.softmax_dropout):  # rate 0: the plain softmax
    np.testing.assert_array_equal(fn(logits, 0.0, None, dtype=jnp.float32), jax.nn.softmax(logits))


def test_library_path():
  with kernels.using(kernels.LIBRARY):
    x = jnp.array([[0.5, -1.0, 3.0, 2.0], [-jnp.inf, -2.0, -3.0, -jnp.inf]])
    np.testing.assert_array_equal(kernels.active().max_last(x), jnp.max(x, axis=-1))
    bits = kernels.active().bits(jax.random.key(0), (3, 5))
    np.testing.assert_array_equal(bits, jax.random.bits(jax.random.key(0), (3, 5), jnp.uint32))
    raw = kernels.active().bits(jax.random.PRNGKey(0), (3, 5))  # a raw uint32[2] key: read as threefry
    np.testing.assert_array_equal(raw, bits)
    # Plackett-Luce samples: k distinct valid candidates, the first pick ~ softmax(s) (4000 draws)
    s = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4, 1.0]))
    where = jnp.array([True, True, True, True, False])
    keys = jax.random.split(jax.random.key(1), 4000)
    actions = np.asarray(jax.vmap(lambda k: pl.sample(s, key=k, k=3, where=where))(keys))
    assert all(len(set(a)) == 3 and 4 not in a for a in actions)
    freq = np.bincount(actions[:, 0], minlength=5)[:4] / len(actions)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    # dropout: exact rate, E[y] = x
    y = np.asarray(kernels.active().dropout(jnp.ones((200, 64)), 0.25, jax.random.key(2)))
    assert set(np.unique(y).tolist()) <= {0.0, float(np.float32(1.0 / 0.75))}
    assert abs((y == 0).mean() - 0.25) < 0.02 and abs(y.mean() - 1.0) < 0.03


def test_models_take_the_active_set():
  """The models' Dropout scales by 1/(1 - rate) under LIBRARY, 256/t under CPU (rate 0.1: t = 230)."""
  dropout = cross_encoder.Dropout(0.1, deterministic=False)
  run = lambda: np.unique(dropout.apply({}, jnp.ones((8, 64)), rngs={"dropout": jax.random.key(3)}))
  for k, scale in ((kernels.LIBRARY, 1.0 / 0.9), (cpu_kernels.CPU, 256.0 / 230.0)):
    with kernels.using(k):
      np.testing.assert_array_equal(run(), np.float32([0.0, scale]))
