"""The PostgreSQL response cache: one server shared by every host of a run.

Select it with reader.cache_path=postgresql://[user@]host[:port]/dbname (any libpq URL or
key=value string). The rows and keys are the SQLite cache's (cache.py), in the table TABLE, created
on first use. Every host reads what any host stored, so a query answered on host A in epoch 1 is
not asked again on host B in epoch 2; INSERT ... ON CONFLICT DO NOTHING keeps the first answer of a
key, which store() hands back to every writer. Keep the password out of the URL (libpq reads
PGPASSWORD and ~/.pgpass; messages and config.json mask it anyway). Needs psycopg 3:
`pip install 'psycopg[binary]'` (the [postgres] extra).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rrpo_jax.reader.base import Response
from rrpo_jax.reader.cache import COLUMNS, Cache, CacheError, create_table, response_of

if TYPE_CHECKING:
  import psycopg  # imported at run time by _psycopg(), where the extra is installed

TABLE = "rrpo_reader_responses"
SCHEMES = ("postgresql", "postgres")
_LOCK_ID = 0x72727030  # advisory lock that serialises the CREATE TABLE of concurrent first users


def _psycopg():
  try:
    import psycopg  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise CacheError(
        "reader.cache_path=postgresql://... needs psycopg 3: pip install 'psycopg[binary]' (the [postgres] extra)"
    ) from e
  return psycopg


def display(url: str) -> str:
  """The server and database of `url` without its password (for messages)."""
  try:
    info = _psycopg().conninfo.conninfo_to_dict(url)
  except Exception:  # pylint: disable=broad-except  (a malformed URL: say only that)
    return "postgresql://<unparsable URL>"
  user = f"{info['user']}@" if info.get("user") else ""
  port = f":{info['port']}" if info.get("port") else ""
  return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"


class PostgresCache(Cache):
  """The PostgreSQL backend. Each process (and fork) opens its own connection; a connection lost
  mid-run is opened again once per operation (the writes are idempotent) before CacheError."""

  def __init__(self, url: str, *, timeout_s: float = 60.0):
    super().__init__()
    self.url = url
    self.location = display(url)
    self.timeout_s = timeout_s
    self._conn: psycopg.Connection | None = None
    self._pid: int | None = None
    self._connection()  # an unreachable server stops the run now, not at the first reader call

  def _connection(self):
    if self._conn is not None and self._pid == os.getpid() and not self._conn.closed:
      return self._conn
    psycopg = _psycopg()
    try:
      conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.timeout_s)))
      with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(create_table(TABLE, "DOUBLE PRECISION"))
    except psycopg.Error as e:
      raise CacheError(f"response cache {self.location}: cannot connect or create {TABLE} ({_reason(e)})") from e
    self._conn, self._pid = conn, os.getpid()
    return conn

  def _run(self, fn):
    """fn(connection), again on a fresh connection if the first one was lost."""
    psycopg = _psycopg()
    for attempt in (0, 1):
      try:
        return fn(self._connection())
      except psycopg.OperationalError as e:
        self._drop()
        if attempt:
          raise CacheError(f"response cache {self.location}: the server stopped answering ({_reason(e)})") from e
      except psycopg.Error as e:
        raise CacheError(f"response cache {self.location}: {_reason(e)}") from e
    raise AssertionError("unreachable")

  @staticmethod
  def _select_on(conn, keys: list[str]) -> dict[str, Response]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key = ANY(%s)", (keys,)).fetchall()
    return {row[0]: response_of(row[1:]) for row in rows}

  def _select(self, keys: list[str]) -> dict[str, Response]:
    return self._run(lambda conn: self._select_on(conn, keys))

  def _insert(self, rows: list[tuple], read_back: list[str] | None = None) -> dict[str, Response]:
    def write(conn):
      with conn.transaction():
        if rows:
          with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} VALUES ({','.join(['%s'] * 10)}) ON CONFLICT (key) DO NOTHING", rows)
        # READ COMMITTED: this statement sees every row committed before it, including a
        # concurrent writer's row that made ours a no-op (ON CONFLICT waited for its commit).
        return self._select_on(conn, read_back) if read_back else {}

    return self._run(write)

  def __len__(self) -> int:
    with self._lock:
      return self._run(lambda conn: conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

  def clear(self) -> None:
    """Deletes every stored response (tests and benchmarks)."""
    with self._lock:
      self._run(lambda conn: conn.execute(f"DELETE FROM {TABLE}"))

  def _drop(self):
    if self._conn is not None and self._pid == os.getpid():
      try:
        self._conn.close()
      except Exception:  # pylint: disable=broad-except  (already broken)
        pass
    self._conn = None

  def close(self) -> None:
    with self._lock:
      self._drop()


def _reason(e: Exception) -> str:
  """The first line of a driver error (libpq messages can span lines)."""
  return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
