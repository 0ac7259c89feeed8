"""Fault injection for the reliability tests: named points where a test makes the trainer die or
lose its disk, deterministically.

  RRPO_JAX_FAULT="<point>[@<n>][=<action>][,...]"
At the n-th time (default the first) this process reaches <point>, do <action>:
  kill  SIGKILL itself, as a crash, an OOM kill or a preemption would (default);
  full  from then on no file can grow (the RLIMIT_FSIZE soft limit drops to 0): every write that
        extends a file fails with EFBIG, as writes on a full disk fail with ENOSPC.
A line "rrpo_jax fault: <action> at <point>@<n>" goes to stderr first. Unset (always, outside
tests), point() costs one comparison.

Points (loop.py, scoring.py, trainer.py); the phase loop's name the step, so that they do not depend on
where a resumed run starts (rrpo.saving.3: while step 3's checkpoint is written):
  <phase>.step.<s>       sft / rrpo: step s computed, before its metrics row
  <phase>.logged.<s>     after the metrics row, before the periodic evaluation and checkpoint
  <phase>.evaluated.<s>  rrpo: after a periodic evaluation, before its checkpoint
  <phase>.saving.<s>     a checkpoint save started: its asynchronous write is still in flight
  <use>.reader.before / .during / .after   use = rrpo (training rewards) or eval (answers): before
      the reader is asked, after it answered but before its answers are cached, after they are cached
  eval.done              the eval mode finished (results and metrics written)
"""

from __future__ import annotations

import collections
import os
import resource
import signal
import sys

ACTIONS = ("kill", "full")


def parse(spec: str) -> dict[str, tuple[int, str]]:
  """{point: (n, action)} from the RRPO_JAX_FAULT syntax."""
  out = {}
  for item in filter(None, (x.strip() for x in spec.split(","))):
    target, _, action = item.partition("=")
    name, _, n = target.partition("@")
    action = action or "kill"
    if action not in ACTIONS or (n and not n.isdigit()):
      raise ValueError(f"RRPO_JAX_FAULT: {item!r} is not <point>[@<n>][=kill|full]")
    out[name] = (int(n or 1), action)
  return out


_FAULTS = parse(os.environ.get("RRPO_JAX_FAULT", ""))
_hits: collections.Counter = collections.Counter()


def point(name: str) -> None:
  """A named fault point (see the module docstring)."""
  if not _FAULTS or name not in _FAULTS:
    return
  _hits[name] += 1
  n, action = _FAULTS[name]
  if _hits[name] != n:
    return
  print(f"rrpo_jax fault: {action} at {name}@{n}", file=sys.stderr, flush=True)
  if action == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
  else:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
