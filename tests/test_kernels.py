"""The kernel choice: CPU-tuned tricks on CPU (the other tests), the library path elsewhere; the
library path forced here with RRPO_JAX_KERNELS=library gives valid results with the same laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrpo_jax.core import cpu_kernels
from rrpo_jax.models import cross_encoder
from rrpo_jax.core import plackett_luce as pl


def test_choice(monkeypatch):
  monkeypatch.delenv("RRPO_JAX_KERNELS", raising=False)
  assert cpu_kernels.cpu_tricks() == (jax.default_backend() == "cpu")
  monkeypatch.setenv("RRPO_JAX_KERNELS", "library")
  assert not cpu_kernels.cpu_tricks()
  monkeypatch.setenv("RRPO_JAX_KERNELS", "gpu")
  with pytest.raises(ValueError, match="RRPO_JAX_KERNELS"):
    cpu_kernels.cpu_tricks()


def test_library_path(monkeypatch):
  monkeypatch.setenv("RRPO_JAX_KERNELS", "library")
  x = jnp.array([[0.5, -1.0, 3.0, 2.0], [-jnp.inf, -2.0, -3.0, -jnp.inf]])
  np.testing.assert_array_equal(pl._max_last(x), jnp.max(x, axis=-1))  # pylint: disable=protected-access
  bits = pl._random_bits(jax.random.key(0), (3, 5))  # pylint: disable=protected-access
  np.testing.assert_array_equal(bits, jax.random.bits(jax.random.key(0), (3, 5), jnp.uint32))
  # Plackett-Luce samples: k distinct valid candidates, the first pick ~ softmax(s) (4000 draws)
  s = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4, 1.0]))
  where = jnp.array([True, True, True, True, False])
  keys = jax.random.split(jax.random.key(1), 4000)
  actions = np.asarray(jax.vmap(lambda k: pl.sample(s, key=k, k=3, where=where))(keys))
  assert all(len(set(a)) == 3 and 4 not in a for a in actions)
  freq = np.bincount(actions[:, 0], minlength=5)[:4] / len(actions)
  np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)
  # dropout: exact rate, E[y] = x
  y = np.asarray(cross_encoder.dropout(jnp.ones((200, 64)), 0.25, jax.random.key(2)))
  assert set(np.unique(y).tolist()) <= {0.0, float(np.float32(1.0 / 0.75))}
  assert abs((y == 0).mean() - 0.25) < 0.02 and abs(y.mean() - 1.0) < 0.03
