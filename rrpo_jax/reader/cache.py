"""Persistent response caches behind one interface (Cache): the same keys, rows and guarantees
whichever backend holds them.

  ResponseCache   SQLite in WAL mode on a local disk (the default): safe for several processes on
                  one host, not across hosts (SQLite's locking does not hold on network file
                  systems). per_host_path(workdir) is where a run puts it when its workdir is not a
                  local directory or it has several processes.
  PostgresCache   a PostgreSQL server shared by every host of a run (reader/postgres.py).
Guarantees: only successful, well-formed responses are stored; concurrent writers lose nothing; the
first response stored under a key is the one kept, and store() hands it back to every writer, so
every process scores the same answer whichever process asked the reader first.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
from typing import Iterable, Mapping

from rrpo_jax.reader.base import Request, Response, Scored


def create_table(table: str, real: str = "REAL") -> str:
  """The CREATE TABLE of the response rows, shared by the SQLite and PostgreSQL backends (`real`: the
  backend's float type)."""
  return f"""
CREATE TABLE IF NOT EXISTS {table} (
  key TEXT PRIMARY KEY,
  identity TEXT NOT NULL,
  qid TEXT NOT NULL,
  text TEXT NOT NULL,
  raw TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  latency_s {real} NOT NULL,
  malformed INTEGER NOT NULL,
  created {real} NOT NULL
)"""


# The columns get_many reads back, in Response's order (text, raw, tokens, latency, malformed).
COLUMNS = "key, text, raw, prompt_tokens, completion_tokens, latency_s, malformed"
SCRATCH_ENV = "RRPO_JAX_SCRATCH"  # local scratch directory for per-host caches (default: the temp dir)


class CacheError(RuntimeError):
  """The cache cannot be used (corrupt, not SQLite, unwritable, server unreachable)."""


def cache_key(identity: str, template_hash: str, request: Request) -> str:
  """sha256 over reader identity, prompt-template hash, qid, question and ordered passage ids."""
  blob = json.dumps(
      [identity, template_hash, request.qid, request.question, list(request.pids)],
      ensure_ascii=False,
      separators=(",", ":"),
  )
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def score_key(identity: str, template_hash: str, request: Request, continuation: str) -> str:
  """sha256 over what cache_key covers plus the scored continuation: a teacher-forced score's key.

  The hashed list has seven entries where an answer's has five, so the two kinds never collide.
  """
  blob = json.dumps(
      [identity, template_hash, request.qid, request.question, list(request.pids), "score", continuation],
      ensure_ascii=False,
      separators=(",", ":"),
  )
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def score_as_response(continuation: str, scored: Scored) -> Response:
  """A Scored stored in the responses table: text = the continuation, raw = its log-probabilities as
  JSON (repr-exact floats), completion_tokens = their count. Failed scores stay failed (never stored)."""
  return Response(
      text=continuation,
      raw=json.dumps(list(scored.logprobs)),
      prompt_tokens=scored.prompt_tokens,
      completion_tokens=len(scored.logprobs),
      latency_s=scored.latency_s,
      ok=scored.ok,
      error=scored.error,
      truncated=scored.truncated,
  )


def response_as_score(response: Response) -> Scored:
  """The Scored a score_as_response row holds (cached=True when read from a cache)."""
  if not response.ok:
    return Scored(ok=False, error=response.error, latency_s=response.latency_s, truncated=response.truncated)
  return Scored(
      logprobs=tuple(float(x) for x in json.loads(response.raw)),
      prompt_tokens=response.prompt_tokens,
      latency_s=response.latency_s,
      cached=response.cached,
      truncated=response.truncated,
  )


def per_host_path(workdir: str) -> str:
  """<scratch>/rrpo_jax/reader_cache/<host>-<sha256(workdir)[:12]>.sqlite on this host's local disk.

  scratch is $RRPO_JAX_SCRATCH, else the temp directory; the host name keeps hosts apart even where
  that directory is shared, and the workdir's hash keeps runs apart.
  """
  scratch = os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()
  run = hashlib.sha256(str(workdir).encode("utf-8")).hexdigest()[:12]
  return os.path.join(scratch, "rrpo_jax", "reader_cache", f"{socket.gethostname()}-{run}.sqlite")


def storable_rows(items: Mapping[str, tuple[Request, str, Response]]) -> list[tuple]:
  """Table rows for {key: (request, identity, response)}, failed and malformed responses left out."""
  return [
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


def response_of(row) -> Response:
  """A Response (cached=True) from a row of COLUMNS without its key."""
  text, raw, pt, ct, lat, bad = row
  return Response(
      text=text, raw=raw, prompt_tokens=pt, completion_tokens=ct, latency_s=lat, malformed=bool(bad), cached=True
  )


class Cache(abc.ABC):
  """Responses by key; only successful ones are stored. Counts hits and misses of get_many.

  Backends implement _select, _insert, __len__ and close; `location` names the store in messages.
  """

  location: str = ""

  def __init__(self):
    self.hits = 0
    self.misses = 0
    self._lock = threading.Lock()

  @abc.abstractmethod
  def _select(self, keys: list[str]) -> dict[str, Response]:
    """The stored responses of `keys` (those present)."""

  @abc.abstractmethod
  def _insert(self, rows: list[tuple], read_back: list[str] | None = None) -> dict[str, Response]:
    """Inserts `rows` (a key already stored keeps its first row); with read_back, returns the
    responses stored under those keys after the insert, in the same transaction."""

  @abc.abstractmethod
  def __len__(self) -> int:
    """Number of stored responses."""

  @abc.abstractmethod
  def close(self) -> None:
    """Closes this process's connection."""

  def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
    """Cached responses for the keys present (marked cached=True); counts hits and misses."""
    keys = list(dict.fromkeys(keys))
    with self._lock:
      found = self._select(keys) if keys else {}
      self.hits += len(found)
      self.misses += len(keys) - len(found)
    return found

  def get(self, key: str) -> Response | None:
    return self.get_many([key]).get(key)

  def put_many(self, items: Mapping[str, tuple[Request, str, Response]]) -> int:
    """Stores {key: (request, identity, response)}; failed and malformed responses are skipped.
    Returns the number of rows offered (a key stored before keeps its first response)."""
    rows = storable_rows(items)
    if rows:
      with self._lock:
        self._insert(rows)
    return len(rows)

  def store(self, items: Mapping[str, tuple[Request, str, Response]]) -> dict[str, Response]:
    """put_many, then the response the cache holds for each key of `items` (cached=True): the
    first one stored, which may be another process's. Keys nothing was stored under are absent."""
    if not items:
      return {}
    with self._lock:
      return self._insert(storable_rows(items), read_back=list(items))

  def stats(self) -> dict:
    total = self.hits + self.misses
    return {"cache_hits": self.hits, "cache_misses": self.misses, "cache_hit_rate": self.hits / total if total else 0.0}


class ResponseCache(Cache):
  """The SQLite backend (WAL mode; keep the file on a local disk).

  Each process (and fork) opens its own connection; writes are short IMMEDIATE transactions and
  wait up to `timeout_s` for another writer's lock.
  """

  def __init__(self, path: str, *, timeout_s: float = 60.0, check: bool = True):
    super().__init__()
    self.path = self.location = os.path.abspath(os.path.expanduser(path))
    self.timeout_s = timeout_s
    self._conn: sqlite3.Connection | None = None
    self._pid: int | None = None
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
      conn.execute(create_table("responses"))
      return conn

    self._conn, self._pid = self._guard(open_), os.getpid()
    return self._conn

  def _select(self, keys: list[str]) -> dict[str, Response]:
    conn = self._connection()
    found: dict[str, Response] = {}
    for lo in range(0, len(keys), 500):
      chunk = keys[lo : lo + 500]
      sql = f"SELECT {COLUMNS} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
      for row in self._guard(lambda: conn.execute(sql, chunk).fetchall()):
        found[row[0]] = response_of(row[1:])
    return found

  def _insert(self, rows: list[tuple], read_back: list[str] | None = None) -> dict[str, Response]:
    conn = self._connection()

    def write():
      conn.execute("BEGIN IMMEDIATE")
      try:
        conn.executemany("INSERT OR IGNORE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        held = self._select(read_back) if read_back else {}
        conn.execute("COMMIT")
        return held
      except BaseException:
        conn.execute("ROLLBACK")
        raise

    return self._guard(write)

  def __len__(self) -> int:
    with self._lock:
      conn = self._connection()
      return self._guard(lambda: conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

  def close(self) -> None:
    with self._lock:
      if self._conn is not None and self._pid == os.getpid():
        self._conn.close()
      self._conn = None
