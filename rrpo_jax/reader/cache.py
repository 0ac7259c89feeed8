"""Persistent response cache: SQLite in WAL mode, safe with several processes on one host."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from typing import Iterable, Mapping

from rrpo_jax.reader.base import Request, Response

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  key TEXT PRIMARY KEY,
  identity TEXT NOT NULL,
  qid TEXT NOT NULL,
  text TEXT NOT NULL,
  raw TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  latency_s REAL NOT NULL,
  malformed INTEGER NOT NULL,
  created REAL NOT NULL
)"""


class CacheError(RuntimeError):
  """The cache file cannot be used (corrupt, not SQLite, unwritable)."""


def cache_key(identity: str, template_hash: str, request: Request) -> str:
  """sha256 over reader identity, prompt-template hash, qid, question and ordered passage ids."""
  blob = json.dumps(
      [identity, template_hash, request.qid, request.question, list(request.pids)],
      ensure_ascii=False,
      separators=(",", ":"),
  )
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
  """Responses by key; only successful ones are stored. Counts hits and misses.

  Each process (and fork) opens its own connection; writes are short IMMEDIATE transactions and
  wait up to `timeout_s` for another writer's lock.
  """

  def __init__(self, path: str, *, timeout_s: float = 60.0, check: bool = True):
    self.path = os.path.abspath(os.path.expanduser(path))
    self.timeout_s = timeout_s
    self.hits = 0
    self.misses = 0
    self._lock = threading.Lock()
    self._conn = None
    self._pid = None
    parent = os.path.dirname(self.path)
    if parent:
      os.makedirs(parent, exist_ok=True)
    conn = self._connection()
    if check:
      self._guard(lambda: self._check(conn))

  def _fail(self, e: Exception) -> CacheError:
    if isinstance(e, sqlite3.OperationalError):  # full disk, I/O error, read-only, locked: not the file's fault
      return CacheError(
          f"response cache {self.path} cannot be used ({type(e).__name__}: {e}): the disk may be full, the "
          "file not writable or locked by another process; the answers already in it are intact"
      )
    return CacheError(
        f"response cache {self.path} is unusable ({type(e).__name__}: {e}); it is not a healthy "
        "SQLite database: move it aside or delete it to start an empty cache"
    )

  def _guard(self, fn):
    try:
      return fn()
    except sqlite3.DatabaseError as e:
      raise self._fail(e) from e

  @staticmethod
  def _check(conn):
    row = conn.execute("PRAGMA quick_check").fetchone()
    if row is None or row[0] != "ok":
      raise sqlite3.DatabaseError(f"quick_check: {row and row[0]}")

  def _connection(self) -> sqlite3.Connection:
    if self._conn is not None and self._pid == os.getpid():
      return self._conn

    def open_():
      conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
      conn.execute("PRAGMA journal_mode=WAL")
      conn.execute("PRAGMA synchronous=NORMAL")
      conn.execute(_SCHEMA)
      return conn

    self._conn, self._pid = self._guard(open_), os.getpid()
    return self._conn

  def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
    """Cached responses for the keys present (marked cached=True); counts hits and misses."""
    keys = list(dict.fromkeys(keys))
    found: dict[str, Response] = {}
    with self._lock:
      conn = self._connection()
      for lo in range(0, len(keys), 500):
        chunk = keys[lo : lo + 500]
        sql = (
            "SELECT key, text, raw, prompt_tokens, completion_tokens, latency_s, malformed FROM responses "
            f"WHERE key IN ({','.join('?' * len(chunk))})"
        )
        for k, text, raw, pt, ct, lat, bad in self._guard(lambda: conn.execute(sql, chunk).fetchall()):
          found[k] = Response(
              text=text,
              raw=raw,
              prompt_tokens=pt,
              completion_tokens=ct,
              latency_s=lat,
              malformed=bool(bad),
              cached=True,
          )
      self.hits += len(found)
      self.misses += len(keys) - len(found)
    return found

  def get(self, key: str) -> Response | None:
    return self.get_many([key]).get(key)

  def put_many(self, items: Mapping[str, tuple[Request, str, Response]]) -> int:
    """Stores {key: (request, identity, response)}; failed and malformed responses are skipped."""
    rows = [
        (
            k,
            identity,
            req.qid,
            r.text,
            r.raw,
            r.prompt_tokens,
            r.completion_tokens,
            r.latency_s,
            int(r.malformed),
            time.time(),
        )
        for k, (req, identity, r) in items.items()
        if r.ok and not r.malformed
    ]
    if not rows:
      return 0

    def write():
      conn.execute("BEGIN IMMEDIATE")
      try:
        conn.executemany("INSERT OR IGNORE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
      except BaseException:
        conn.execute("ROLLBACK")
        raise

    with self._lock:
      conn = self._connection()
      self._guard(write)
    return len(rows)

  def __len__(self) -> int:
    with self._lock:
      conn = self._connection()
      return self._guard(lambda: conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

  def stats(self) -> dict:
    total = self.hits + self.misses
    return {"cache_hits": self.hits, "cache_misses": self.misses, "cache_hit_rate": self.hits / total if total else 0.0}

  def close(self) -> None:
    with self._lock:
      if self._conn is not None and self._pid == os.getpid():
        self._conn.close()
      self._conn = None
