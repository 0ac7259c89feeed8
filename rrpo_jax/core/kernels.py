"""The kernels the core and the models call, chosen once at the edge.

Core and model functions call `active().bits(...)`, `active().max_last(...)` and so on, one path each.
The set is LIBRARY (jax.random, jnp reductions, plain matmul and softmax: what XLA optimises on GPU
and TPU) unless the entry point chose another with `use` before anything is traced: the trainer
applies config.kernels through cpu_kernels.select, which picks cpu_kernels.CPU (tricks measured
faster on XLA:CPU; different random streams, same laws) on the CPU backend. The set is read when a
function is traced, so a jitted function keeps the set it was first traced with.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterator

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Kernels:
  """One implementation of each kernel (signatures as the LIBRARY functions below)."""

  name: str
  bits: Callable[..., Array]  # (key, shape) -> uint32[shape]
  max_last: Callable[..., Array]  # (x[..., n], keepdims=False) -> max over the last axis
  batched_matmul: Callable[..., Array]  # (a, b, *, transpose_b, preferred_element_type) -> a @ b
  dropout: Callable[..., Array]  # (x, rate, key) -> inverted dropout of x
  softmax_dropout: Callable[..., Array]  # (logits, rate, key, *, dtype) -> dropout(softmax(logits))


def bits(key: Array, shape: tuple[int, ...]) -> Array:
  """uint32[shape] random bits: jax.random.bits (a raw uint32[2] key is read as a threefry key)."""
  typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
  return jax.random.bits(key if typed else jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32)), shape, jnp.uint32)


def max_last(x: Array, keepdims: bool = False) -> Array:
  """max over the last axis: x[..., n] -> [...] ([..., 1] with keepdims)."""
  return jnp.max(x, axis=-1, keepdims=keepdims)


def batched_matmul(a: Array, b: Array, *, transpose_b: bool = False, preferred_element_type=None) -> Array:
  """a [..., I, J] @ b [..., J, E] -> [..., I, E] (transpose_b: b is [..., E, J] and a @ b^T)."""
  return jnp.matmul(a, b.swapaxes(-1, -2) if transpose_b else b, preferred_element_type=preferred_element_type)


def dropout(x: Array, rate: float, key) -> Array:
  """Inverted dropout: y = x * keep / (1 - rate), keep ~ Bernoulli(1 - rate) (jax.random.bernoulli)."""
  if rate <= 0.0:
    return x
  if rate >= 1.0:
    return jnp.zeros_like(x)
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


def softmax_dropout(logits: Array, rate: float, key, *, dtype) -> Array:
  """y = dropout(softmax(logits).astype(dtype), rate, key) over the last axis, plain autodiff."""
  return dropout(jax.nn.softmax(logits, axis=-1).astype(dtype), rate, key)


LIBRARY = Kernels("library", bits, max_last, batched_matmul, dropout, softmax_dropout)

_active = LIBRARY


def active() -> Kernels:
  """The kernel set in use (LIBRARY unless `use` chose another)."""
  return _active


def use(k: Kernels) -> None:
  """Chooses the kernel set for the process: once, at the edge, before anything is traced."""
  global _active
  _active = k


@contextlib.contextmanager
def using(k: Kernels) -> Iterator[Kernels]:
  """`use(k)` for the block, then the set before it (tests; functions traced inside keep k)."""
  before = active()
  use(k)
  try:
    yield k
  finally:
    use(before)
