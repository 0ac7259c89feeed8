"""The process's glibc malloc policy for XLA:CPU runs: freed memory stays mapped for the next step.

XLA:CPU allocates the temporaries of each call as one buffer (the MiniLM train step: 1.0 GB at
8 x 256 tokens, 4 GB at 32 x 256) and frees it on return. glibc serves a request that large with a
fresh mmap and unmaps it on free, so every page of it faults, and is zeroed, again at the next call:
~250k page faults per step at 8 x 256 and ~1M at 32 x 256, 15-18% of the train step's CPU time on
the 2-core AMD EPYC this was measured on. With one arena, no mmap and no trimming, the buffer comes
from the heap and the next call reuses the same pages: the step's page faults drop to ~0 after two
steps (PyTorch's train step, which faulted ~0.9M times per step at 32 x 256, drops to ~0 too).

The cost: the heap keeps its high-water mark (freed memory is reused, not returned to the OS), and
all threads share one arena (a worker thread's own arena would mmap a buffer that large anyway).
Where there are no large buffers to keep, the three settings together cost time:
Reranker.score_pairs over 320 pairs of mixed lengths ran 8-14% slower on the same machine (one
arena alone, or no mmap and no trimming with per-thread arenas, did not slow it).
So it is opt-in: RRPO_JAX_MALLOC=keep, or =auto for "keep where XLA:CPU runs the model" (the
run can only use the CPU backend); unset or =system leaves glibc's default. A whole training run
with it has not been timed against one without (a CPU warm-up is all train steps; evaluation is
mostly scoring), nor has its memory held over hours. The trainer's entry point and the benchmarks
call configure() with "auto", which reads the variable. It must run before JAX's first
computation: a thread that has allocated keeps its arena.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform

CHOICES = ("auto", "keep", "system")
ENV = "RRPO_JAX_MALLOC"
# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
# distribution-name prefixes of JAX's accelerator plugins (jax-cuda12-plugin, libtpu, ...)
_ACCELERATOR_PLUGINS = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "jax-metal", "jax_metal", "libtpu")


def cpu_only() -> bool:
  """True when JAX can only pick the CPU backend: JAX_PLATFORMS starts with cpu, or, unset, no
  GPU / TPU plugin is installed. Decided without starting JAX."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  names = ((d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions())
  return not any(n.startswith(_ACCELERATOR_PLUGINS) for n in names)


def configure(choice: str = "auto") -> bool:
  """Applies the policy above if `choice` asks for it ("auto": $RRPO_JAX_MALLOC, unset meaning
  "system"; its "auto" means "keep" when cpu_only()); returns whether it is in force. "system"
  leaves malloc alone, and so does a platform other than Linux with glibc. A value outside CHOICES
  raises ValueError."""
  if choice == "auto":
    choice = os.environ.get(ENV, "").strip() or "system"
    if choice not in CHOICES:
      raise ValueError(f"{ENV}={choice!r}: use one of {', '.join(CHOICES)}")
  elif choice not in CHOICES:
    raise ValueError(f"malloc policy {choice!r}: use one of {', '.join(CHOICES)}")
  if choice == "system" or (choice == "auto" and not cpu_only()):
    return False
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return False
  libc = ctypes.CDLL(None)
  # trim threshold -1: SIZE_MAX as glibc reads it, i.e. never give the heap's top back.
  return all(libc.mallopt(p, v) == 1 for p, v in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
