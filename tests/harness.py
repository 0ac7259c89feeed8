"""Test harness around the real entry point: `python tests/harness.py --config=... --workdir=...`
runs rrpo_jax.main with what the environment asks for (nothing else changes):

  RRPO_TEST_FAKE_GCS=ROOT      gs://BUCKET/PATH is the local folder ROOT/BUCKET/PATH (fake_gcs below)
  RRPO_TEST_READER_LOG=FILE    every request the reader is sent is appended to FILE as one line
                               (process index, then the request's cache key)
  RRPO_TEST_KILL_AFTER=P:S     SIGKILL this process right after phase P asked for the checkpoint of
                               step S (an asynchronous save may still be in flight)

SIGUSR1 prints every thread's Python stack to stderr (what a test sends a process that hangs).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from unittest import mock

from etils.epath import gpath as epath_gpath
from etils.epath import testing as epath_testing

_GS = "gs://"


@contextlib.contextmanager
def fake_gcs(root: str):
  """gs:// paths on the local folder `root`, through etils' own epath mock (epath.testing.mock_epath).

  Orbax works through epath for every directory, metadata and commit-marker operation, which the
  mock serves. Its array bytes go through TensorStore, whose C++ gcs kvstore driver the Python mock
  cannot reach: that one spec is mapped to TensorStore's file driver over the same folder. The GCS
  API call that asks whether a bucket has a hierarchical namespace answers "no" (a plain bucket).
  """
  root = os.path.abspath(root)

  def local(p) -> str:
    p = os.fspath(p)
    return os.path.join(root, p[len(_GS) :]) if p.startswith(_GS) else p

  def remote(p) -> str:
    p = os.fspath(p)
    return _GS + os.path.relpath(p, root) if p == root or p.startswith(root + os.sep) else p

  def one(fn, p, *args, **kwargs):
    return fn(local(p), *args, **kwargs)

  def two(fn, p, dst, *args, **kwargs):
    return fn(local(p), local(dst), *args, **kwargs)

  def glob(fn, pattern):
    return [remote(p) for p in fn(local(pattern))]

  def walk(fn, top, **kwargs):
    for base, dirs, files in fn(local(top), **kwargs):
      yield remote(base), dirs, files

  def kvstore(path: str) -> dict:
    return {"driver": "file", "path": local(path)}

  from orbax.checkpoint._src.path import gcs_utils  # pylint: disable=import-outside-toplevel

  names = ("exists", "isdir", "listdir", "makedirs", "mkdir", "open", "remove", "rmtree", "stat")
  with contextlib.ExitStack() as stack:
    stack.enter_context(
        epath_testing.mock_epath(
            **{name: one for name in names}, rename=two, replace=two, copy=two, glob=glob, walk=walk
        )
    )
    # with TensorFlow installed epath would send gs:// to tf.io.gfile, past the mock
    stack.enter_context(mock.patch.object(epath_gpath, "_is_tf_installed", lambda: False))
    stack.enter_context(mock.patch.object(gcs_utils, "get_kvstore_for_gcs", kvstore))
    stack.enter_context(mock.patch.object(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False))
    yield root


def _log_reader_requests(path: str):
  """Appends every request the reader backends are sent to `path` (one line each)."""
  import jax  # pylint: disable=import-outside-toplevel

  from rrpo_jax.reader import base  # pylint: disable=import-outside-toplevel

  answer = base.Reader.answer

  def logged(self, requests):
    with open(path, "a", encoding="utf-8") as f:
      for r in requests:
        f.write(f"{jax.process_index()} {r.qid} {'|'.join(r.pids)}\n")
    return answer(self, requests)

  return mock.patch.object(base.Reader, "answer", logged)


def _kill_after(spec: str):
  """SIGKILL right after the checkpoint of `phase:step` was requested."""
  from rrpo_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel

  phase, step = spec.split(":")
  save = ckpt_lib.Checkpointer.save

  def save_then_die(self, s, state, extra, **kwargs):
    out = save(self, s, state, extra, **kwargs)
    if extra.get("phase") == phase and s == int(step):
      os.kill(os.getpid(), signal.SIGKILL)
    return out

  return mock.patch.object(ckpt_lib.Checkpointer, "save", save_then_die)


def main():
  faulthandler.register(signal.SIGUSR1, all_threads=True)
  from absl import app  # pylint: disable=import-outside-toplevel

  from rrpo_jax import main as main_lib  # pylint: disable=import-outside-toplevel

  with contextlib.ExitStack() as stack:
    if os.environ.get("RRPO_TEST_FAKE_GCS"):
      stack.enter_context(fake_gcs(os.environ["RRPO_TEST_FAKE_GCS"]))
    if os.environ.get("RRPO_TEST_READER_LOG"):
      stack.enter_context(_log_reader_requests(os.environ["RRPO_TEST_READER_LOG"]))
    if os.environ.get("RRPO_TEST_KILL_AFTER"):
      stack.enter_context(_kill_after(os.environ["RRPO_TEST_KILL_AFTER"]))
    app.run(main_lib.main)


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main()
