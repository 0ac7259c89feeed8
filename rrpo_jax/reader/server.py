"""A local OpenAI-compatible reader server: llama-cpp-python's server on a GGUF, on 127.0.0.1.

llama-cpp-python's server runs one request at a time (one slot; it has no --parallel option), so
concurrency against it only overlaps HTTP and queueing. vLLM / llama.cpp's own llama-server batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from rrpo_jax.reader.llama_cpp import gguf_path

PARALLEL_SLOTS = 1  # llama-cpp-python's server serialises requests behind one lock


def free_port(host: str = "127.0.0.1") -> int:
  """A TCP port nobody listens on right now."""
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


class LlamaServer:
  """`python -m llama_cpp.server` as a child process; a context manager; stop() ends only it."""

  def __init__(
      self,
      model: str | None = None,
      *,
      host: str = "127.0.0.1",
      port: int | None = None,
      n_ctx: int = 2048,
      n_threads: int | None = None,
      n_batch: int | None = None,
      log_path: str | None = None,
  ):
    """n_batch: tokens evaluated per step (None: the server's 512). 1 makes answers independent of
    the order of requests (llama.cpp reuses the previous prompt's prefix, and results computed in
    batches of other sizes can differ in the last bits): what tests comparing answers need."""
    self.path = gguf_path(model)
    self.host, self.port = host, port or free_port(host)
    self.n_ctx, self.n_threads, self.n_batch = n_ctx, n_threads or os.cpu_count(), n_batch
    self.log_path = log_path
    self.proc: subprocess.Popen | None = None

  @property
  def base_url(self) -> str:
    return f"http://{self.host}:{self.port}/v1"

  def start(self, timeout_s: float = 120.0) -> "LlamaServer":
    """Starts the server and waits until /v1/models answers."""
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        self.path,
        "--host",
        self.host,
        "--port",
        str(self.port),
        "--n_ctx",
        str(self.n_ctx),
        "--n_threads",
        str(self.n_threads),
        "--interrupt_requests",
        "False",
        "--verbose",
        "False",
    ]
    if self.n_batch:
      cmd += ["--n_batch", str(self.n_batch), "--n_ubatch", str(self.n_batch)]
    log = open(self.log_path, "ab") if self.log_path else None  # pylint: disable=consider-using-with
    stdout = log if log is not None else subprocess.DEVNULL
    self.proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    if log is not None:
      log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if self.proc.poll() is not None:
        raise RuntimeError(f"reader server exited with {self.proc.returncode} (log: {self.log_path})")
      try:
        if httpx.get(f"{self.base_url}/models", timeout=2.0, trust_env=False).status_code == 200:
          return self
      except httpx.TransportError:
        pass
      time.sleep(0.2)
    self.stop()
    raise TimeoutError(f"reader server on {self.base_url} not ready after {timeout_s:.0f} s")

  def kill(self) -> None:
    """SIGKILL, as a crash would."""
    if self.proc is not None and self.proc.poll() is None:
      self.proc.kill()
      self.proc.wait()

  def stop(self) -> None:
    if self.proc is not None and self.proc.poll() is None:
      self.proc.terminate()
      try:
        self.proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()

  def __enter__(self):
    return self.start() if self.proc is None else self

  def __exit__(self, *exc):
    self.stop()
