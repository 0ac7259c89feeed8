"""Which implementation the core's kernels use.

Tricks measured faster on this project's 2-core XLA:CPU (plackett_luce's hand-written Threefry bits
and bitcast integer max, modeling's 8-bit dropout masks and the attention backward's custom
gradients, batched_matmul and softmax_dropout) run only on CPU; on GPU / TPU the core takes
the library path (jax.random, plain jnp reductions), which is what XLA optimises there. The choice
is made when a function is traced. RRPO_JAX_KERNELS=cpu or =library overrides it (tests, benchmarks).
"""

from __future__ import annotations

import os

import jax

CHOICES = ("auto", "cpu", "library")


def cpu_tricks() -> bool:
  """True where the CPU-tuned kernels run: on the CPU backend, unless RRPO_JAX_KERNELS says otherwise."""
  choice = os.environ.get("RRPO_JAX_KERNELS", "auto")
  if choice not in CHOICES:
    raise ValueError(f"RRPO_JAX_KERNELS={choice!r}: use one of {CHOICES}")
  if choice == "auto":
    return jax.default_backend() == "cpu"
  return choice == "cpu"
