"""A fault-injecting HTTP proxy for the reader tests, on 127.0.0.1 between the openai backend and a
real OpenAI-compatible server: it forwards each POST, or fails it as networks and servers fail.

  proxy = FaultProxy("http://127.0.0.1:8000").start()   # then base_url=proxy.base_url
  proxy.script = ["500", "500", "pass", "hang", ...]    # one entry per request, in arrival order
Faults (FAULTS): the next request...
  hang       gets no reply for hang_s (past the client's timeout), then a closed connection
  reset      has its connection reset (TCP RST), no reply
  500 / 429  gets that status with a JSON error body (never forwarded)
  slow       is forwarded after slow_s (within the client's timeout)
  truncated  is forwarded; the reply's body stops halfway, short of its Content-Length
  cut_json   is forwarded; the reply is cut halfway with a matching Content-Length: invalid JSON
  not_json   gets 200 with an HTML page
A request finding the upstream server down gets 502 (as a gateway answers). `injected` counts the
faults served by kind, `forwarded` the requests the upstream answered.
"""

from __future__ import annotations

import collections
import http.server
import socket
import struct
import threading
import time

import httpx

FAULTS = ("hang", "reset", "500", "429", "slow", "truncated", "cut_json", "not_json")


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"

  def do_POST(self):  # pylint: disable=invalid-name
    proxy = self.server.proxy
    body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
    fault = proxy.next_fault()
    if fault == "hang":
      time.sleep(proxy.hang_s)
      self.close_connection = True
      return
    if fault == "reset":
      self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
      self.close_connection = True
      self.connection.close()
      return
    if fault in ("500", "429"):
      self._reply(int(fault), b'{"error": {"message": "injected fault"}}')
      return
    if fault == "not_json":
      self._reply(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
      return
    if fault == "slow":
      time.sleep(proxy.slow_s)
    try:
      upstream = proxy.forward(self.path, body, self.headers)
    except httpx.TransportError:
      self._reply(502, b'{"error": {"message": "upstream unreachable"}}')
      return
    data = upstream.content
    if fault == "cut_json":
      self._reply(upstream.status_code, data[: len(data) // 2])
    elif fault == "truncated":
      self.send_response(upstream.status_code)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data[: len(data) // 2])
      self.wfile.flush()
      self.close_connection = True
      self.connection.shutdown(socket.SHUT_RDWR)
    else:
      self._reply(upstream.status_code, data)

  def _reply(self, status: int, data: bytes, content_type: str = "application/json"):
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


class _Server(http.server.ThreadingHTTPServer):
  daemon_threads = True

  def handle_error(self, request, client_address):
    pass  # writes to a connection the fault closed


class FaultProxy:
  """The proxy (a context manager); `script` and the counters are safe to use from any thread."""

  def __init__(self, upstream: str, *, hang_s: float = 6.0, slow_s: float = 1.0):
    self.upstream = upstream.rstrip("/")
    self.hang_s, self.slow_s = hang_s, slow_s
    self.script: list[str] = []
    self.injected: collections.Counter = collections.Counter()
    self.forwarded = 0
    self._lock = threading.Lock()
    self._client = httpx.Client(timeout=600.0, trust_env=False)
    self._server = _Server(("127.0.0.1", 0), _Handler)
    self._server.proxy = self

  @property
  def base_url(self) -> str:
    return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

  def next_fault(self) -> str:
    with self._lock:
      fault = self.script.pop(0) if self.script else "pass"
      if fault != "pass":
        self.injected[fault] += 1
      return fault

  def forward(self, path: str, body: bytes, headers) -> httpx.Response:
    keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization")}
    reply = self._client.post(self.upstream + path, content=body, headers=keep)
    with self._lock:
      self.forwarded += 1
    return reply

  def start(self) -> "FaultProxy":
    threading.Thread(target=self._server.serve_forever, daemon=True).start()
    return self

  def stop(self):
    self._server.shutdown()
    self._server.server_close()
    self._client.close()

  def __enter__(self):
    return self.start()

  def __exit__(self, *exc):
    self.stop()
