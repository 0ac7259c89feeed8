"""Workdir I/O on local disks and object stores (gs://, s3://, ...) through etils.epath, as Orbax does.

Every file a run writes or reads in its workdir goes through here or through Orbax. Object stores
have no append and no rename: a file there is written whole, in one upload, which replaces the
object atomically; on a local disk the same functions write a temporary file and rename it, so a
killed run never leaves a torn file. TensorBoard event files reach object stores through
register_tensorboard_writer (tensorboardX's own gs:// writer needs google-cloud-storage and ignores
epath).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
from typing import Iterator

from etils import epath

_SCHEMES = ("gs", "s3", "az", "hf")  # epath's URI schemes


def is_local(path) -> bool:
  """True for a local file-system path, False for a URI such as gs://bucket/run."""
  scheme, sep, _ = os.fspath(path).partition("://")
  return not (sep and scheme in _SCHEMES)


_PACKAGES = {"gs": "gcsfs (pip install -e '.[gcs]')", "s3": "s3fs", "az": "adlfs", "hf": "huggingface_hub"}


def backend_problem(path) -> str | None:
  """Why this install cannot reach a URI's object store (the fsspec package for its scheme is not
  installed), or None (a local path, or a store whose package is there; the store itself may still
  refuse, with its own error)."""
  if is_local(path):
    return None
  scheme = os.fspath(path).partition("://")[0]
  try:
    exists(path)  # epath loads the store's fsspec package at the first use
  except ImportError:
    return f"{path}: {scheme}:// needs {_PACKAGES[scheme]}, which is not installed"
  return None


def absolute(path) -> str:
  """A local path made absolute (and ~ expanded); a URI unchanged."""
  path = os.fspath(path)
  return os.path.abspath(os.path.expanduser(path)) if is_local(path) else path


def join(base, *parts: str) -> str:
  """base/part/...: os.path.join for local paths, '/'-joined for URIs."""
  return os.path.join(base, *parts) if is_local(base) else posixpath.join(os.fspath(base), *parts)


def exists(path) -> bool:
  return epath.Path(path).exists()


def isdir(path) -> bool:
  return epath.Path(path).is_dir()


def isfile(path) -> bool:
  p = epath.Path(path)
  return p.exists() and not p.is_dir()


def listdir(path) -> list[str]:
  """Names in a directory ([] when it does not exist)."""
  p = epath.Path(path)
  return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def rename(src, dst) -> None:
  """Moves a file or directory (on object stores: a copy, then a delete)."""
  epath.Path(src).rename(dst)


def makedirs(path) -> None:
  """Creates a directory and its parents (nothing on object stores, which have no directories)."""
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def open_(path, mode: str = "r"):
  """A file object (text modes are UTF-8); 'w' on an object store uploads at close."""
  return epath.Path(path).open(mode)


def read_text(path) -> str:
  return epath.Path(path).read_text()


def read_json_object(path) -> dict:
  """The JSON object in a file; a file that is not one is a ValueError naming it (and the line)."""
  try:
    data = json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: line {e.lineno}: not JSON ({e.msg})") from None
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: byte {e.start}: not UTF-8 text ({e.reason})") from None
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
  return data


def write_bytes(path, data: bytes) -> None:
  """Writes `data` whole: a rename of a temporary file locally, one upload on an object store."""
  p = epath.Path(path)
  p.parent.mkdir(parents=True, exist_ok=True)
  if not is_local(path):
    p.write_bytes(data)
    return
  tmp = p.parent / f".{p.name}.tmp{os.getpid()}"
  tmp.write_bytes(data)
  tmp.replace(p)


def write_text(path, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def copy_tree(src: str, dst) -> None:
  """Copies the local directory `src` into `dst` (any path), file by file, streamed."""
  for base, _, files in os.walk(src):
    rel = os.path.relpath(base, src)
    out = dst if rel == "." else join(dst, *rel.split(os.sep))
    makedirs(out)
    for name in files:
      with open(os.path.join(base, name), "rb") as f, open_(join(out, name), "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)


def walk_files(path) -> Iterator[str]:
  """Relative paths of the files under `path` (for tests and tools)."""
  root = epath.Path(path)
  for base, _, files in root.walk():
    for name in files:
      yield str((base / name).relative_to(root))


class _ObjectWriter:
  """A TensorBoard record file on an object store: buffered, uploaded whole at every flush."""

  def __init__(self, path: str):
    self.path = path
    self.buffer = io.BytesIO()

  def write(self, data: bytes):
    self.buffer.write(data)

  def flush(self):
    epath.Path(self.path).write_bytes(self.buffer.getvalue())

  def close(self):
    self.flush()


class _ObjectWriterFactory:
  """tensorboardX's writer-factory interface (record_writer.register_writer_factory)."""

  def open(self, path: str) -> _ObjectWriter:
    return _ObjectWriter(path)

  def directory_check(self, path: str) -> None:
    makedirs(path)  # nothing on an object store; the folder where a mock or a mount maps it


def register_tensorboard_writer(logdir: str) -> None:
  """Routes tensorboardX's event files under `logdir` through epath when it is a URI."""
  if is_local(logdir):
    return
  from tensorboardX import record_writer  # pylint: disable=import-outside-toplevel

  record_writer.register_writer_factory(str(logdir).split("://", 1)[0], _ObjectWriterFactory())
