"""The openai backend: a real llama-cpp-python server on 127.0.0.1 (killed and restarted mid-batch),
and a scripted local HTTP server for 500 / 429 / 401 / malformed replies. Loopback traffic only."""

import http.server
import json
import logging
import traceback
import threading
import time

import numpy as np
import pytest

from rrpo_jax.train import scoring
from rrpo_jax.reader import (Passage, ReaderError, ReaderUnavailableError, Request, ResponseCache, make_reader)
from rrpo_jax.reader.server import LlamaServer
from test_scoring import Cand, Ex

PASSAGES = [
    Passage("p1", "Eiffel Tower", "The Eiffel Tower in Paris was completed in 1889."),
    Passage("p2", "Louvre", "The Louvre is an art museum in Paris."),
    Passage("p3", "Seine", "The Seine is a river that flows through Paris."),
]


def _reader(base_url, **kw):
  config = {
      "backend": "openai",
      "base_url": base_url,
      "max_tokens": 6,
      "concurrency": 2,
      "timeout_s": 30,
      "max_retries": 8,
      "backoff_s": 0.25,
      "max_backoff_s": 2.0,
      **kw,
  }
  return make_reader(config)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  # One thread: the test machine has 2 cores shared with the test process.
  srv = LlamaServer(n_ctx=512, n_threads=1, log_path=str(tmp_path_factory.mktemp("srv") / "server.log"))
  with srv:
    yield srv


def test_chat_and_completions_against_a_real_server(server):
  reader = _reader(server.base_url)
  reqs = [
      Request("q1", "When was the Eiffel Tower completed?", tuple(PASSAGES[:1])),
      Request("q2", "What is the Louvre?", tuple(PASSAGES[1:2])),
  ]
  out = reader.answer(reqs)
  assert all(r.ok and r.text and 0 < r.completion_tokens <= 6 and r.prompt_tokens > 20 for r in out)
  assert reader.answer(reqs[:1])[0].text == out[0].text  # temperature 0: deterministic
  plain = _reader(server.base_url, endpoint="completions").answer(reqs[:1])[0]
  assert plain.ok and plain.completion_tokens <= 6
  reader.close()


def test_server_killed_mid_batch_and_restarted(server, tmp_path):
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  reader = _reader(server.base_url)
  seen = []
  hooks = reader._client.event_hooks  # pylint: disable=protected-access
  hooks["response"].append(lambda r: seen.append(r.status_code))
  step = scoring.ScoringStep(reader, cache)
  cands = [Cand(p.pid, p.title, p.text) for p in PASSAGES]
  ex = [
      Ex("q1", "When was the Eiffel Tower completed?", ["1889"], cands),
      Ex("q2", "Which river flows through Paris?", ["Seine"], cands),
  ]
  ref, act = np.array([[0, 1], [2, 0]]), np.array([[1, 0], [0, 2]])  # 8 distinct prefix prompts
  result = {}
  worker = threading.Thread(target=lambda: result.update(res=step.score(ex, ref, act)))
  worker.start()
  deadline = time.monotonic() + 120
  while not seen and time.monotonic() < deadline:
    time.sleep(0.02)
  assert seen, "no response before the kill"
  server.kill()  # mid-batch: later requests hit a dead port
  assert len(seen) < 8, "the batch finished before the kill"
  time.sleep(0.5)
  server.proc = None
  server.start()  # same port
  worker.join(timeout=240)
  res = result["res"]
  assert res.stats["reader_calls"] == 8 and res.stats["failed"] == 0 and res.stats["malformed"] == 0
  assert len(cache) == 8  # every request answered once and cached; no failure among them
  again = step.score(ex, ref, act)
  assert again.stats["reader_calls"] == 0
  np.testing.assert_array_equal(again.rewards, res.rewards)

  # Killed and not restarted: a clear error after the retry budget, and nothing new cached.
  server.kill()
  short = _reader(server.base_url, max_retries=2, backoff_s=0.05)
  with pytest.raises(ReaderUnavailableError, match="failed 3 attempts"):
    scoring.ScoringStep(short, cache).score(ex, np.array([[2, 1], [1, 2]]), np.array([[2, 1], [1, 2]]))
  assert len(cache) == 8
  server.proc = None
  server.start()  # leave the module's server running


class _Scripted(http.server.BaseHTTPRequestHandler):
  """Replies with the next scripted (status, body); the last one repeats. Records requests."""

  def do_POST(self):  # pylint: disable=invalid-name
    n = int(self.headers.get("Content-Length", 0))
    self.server.seen.append((self.path, dict(self.headers), json.loads(self.rfile.read(n))))
    status, body = self.server.script[min(len(self.server.seen), len(self.server.script)) - 1]
    if body == "ECHO_KEY":  # a careless server quoting the credentials it was sent
      body = {"error": f"invalid credentials: {self.headers.get('Authorization')}"}
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture
def scripted():
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
  srv.seen, srv.script = [], []
  thread = threading.Thread(target=srv.serve_forever, daemon=True)
  thread.start()
  srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
  yield srv
  srv.shutdown()
  srv.server_close()


OK = {
    "choices": [{"message": {"role": "assistant", "content": "Answer: 1889.\nBecause..."}}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 7},
}
REQ = Request("q1", "When?", tuple(PASSAGES[:1]))


def test_500_is_retried_then_a_clear_error(scripted):
  scripted.script = [(500, {"error": "boom"})]
  reader = _reader(scripted.base_url, max_retries=3, backoff_s=0.01)
  with pytest.raises(ReaderUnavailableError, match=r"failed 4 attempts; last: HTTP 500"):
    reader.answer([REQ])
  assert len(scripted.seen) == 4


def test_transient_500_and_429_then_success(scripted):
  scripted.script = [(500, "oops"), (429, {"error": "slow down"}), (200, OK)]
  out = _reader(scripted.base_url, max_retries=3, backoff_s=0.01).answer([REQ])[0]
  assert out.ok and out.text == "1889." and out.raw.startswith("Answer: 1889.")  # first line, label dropped
  assert (out.prompt_tokens, out.completion_tokens) == (50, 7) and len(scripted.seen) == 3
  path, _, body = scripted.seen[-1]
  assert path == "/v1/chat/completions" and body["temperature"] == 0.0 and body["max_tokens"] == 6
  assert body["messages"][-1]["content"].endswith("Answer:")


def test_malformed_reply_is_an_empty_counted_answer(scripted, tmp_path):
  scripted.script = [(200, {"choices": []}), (200, "not json")]
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  step = scoring.ScoringStep(_reader(scripted.base_url, concurrency=1), cache)
  ex = [Ex("q1", "When?", ["1889"], [Cand(p.pid, p.title, p.text) for p in PASSAGES[:2]])]
  res = step.score(ex, np.array([[0]]), np.array([[1]]))
  assert res.stats["malformed"] == 2 and res.stats["failed"] == 0
  np.testing.assert_array_equal(res.rewards, [[0]])
  assert len(cache) == 0


def test_bad_credentials_fail_at_once_and_the_key_stays_secret(scripted, monkeypatch):
  monkeypatch.setenv("RRPO_TEST_KEY", "sk-very-secret")
  scripted.script = [(401, {"error": "bad key"})]
  reader = _reader(scripted.base_url, api_key_env="RRPO_TEST_KEY", max_retries=3, backoff_s=0.01)
  with pytest.raises(ReaderError, match="HTTP 401") as info:
    reader.answer([REQ])
  assert len(scripted.seen) == 1  # not retried
  assert scripted.seen[0][1]["Authorization"] == "Bearer sk-very-secret"
  for text in (str(info.value), reader.identity, repr(reader)):
    assert "sk-very-secret" not in text


CANARY = "sk-canary-7f3a91c0e5d24b68"


def test_canary_key_stays_in_the_authorization_header(scripted, tmp_path, monkeypatch, caplog, capfd):
  """The key comes only from the variable named by api_key_env; it is sent, and found nowhere else:
  not in errors (even when the server echoes it), the response cache, logs or captured output."""
  monkeypatch.setenv("RRPO_CANARY_KEY", CANARY)
  caplog.set_level(logging.DEBUG)  # httpx / httpcore debug logs included
  cache_path = tmp_path / "cache.sqlite"
  cache = ResponseCache(str(cache_path))
  reader = _reader(scripted.base_url, api_key_env="RRPO_CANARY_KEY", max_retries=1, backoff_s=0.01, concurrency=1)
  assert _reader(scripted.base_url)._client.headers.get("Authorization") is None  # default variable unset
  scripted.script = [(200, OK)]
  ex = [Ex("q1", "When?", ["1889"], [Cand(p.pid, p.title, p.text) for p in PASSAGES[:2]])]
  res = scoring.ScoringStep(reader, cache).score(ex, np.array([[0]]), np.array([[1]]))
  assert res.stats["failed"] == 0 and len(cache) == 2
  texts = [reader.identity, repr(reader), str(vars(reader.template))]
  for status, error in ((401, ReaderError), (500, ReaderUnavailableError)):
    scripted.script = [(status, "ECHO_KEY")]
    with pytest.raises(error) as info:
      reader.answer([REQ])
    texts.append("".join(traceback.format_exception(info.value)))
    assert f"HTTP {status}" in texts[-1] and "invalid credentials: Bearer <redacted>" in texts[-1]
  scripted.script = [(400, "ECHO_KEY")]
  (bad,) = reader.answer([REQ])
  assert not bad.ok and "<redacted>" in bad.error
  texts.append(repr(bad))
  assert all(h["Authorization"] == f"Bearer {CANARY}" for _, h, _ in scripted.seen)  # it was sent every time
  reader.close()
  cache.close()
  out, err = capfd.readouterr()
  texts += [out, err, caplog.text]
  for text in texts:
    assert CANARY not in text
  for path in tmp_path.iterdir():  # the cache and its WAL / shared-memory files
    assert CANARY.encode() not in path.read_bytes(), path.name
