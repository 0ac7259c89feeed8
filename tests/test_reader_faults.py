"""Reader faults from a fault proxy (tests/fault_proxy.py) in front of a real llama.cpp server on
127.0.0.1: the reader scoring step that training uses ends with the same rewards as a clean pass,
or stops with one clear line; failed and malformed answers are never cached and carry no signal.

The server evaluates one token per step (n_batch=1), so that its answers do not depend on the order
of requests that retries change. RRPO_JAX_FAULT_STATS=<file> adds the counts to that JSON file.
"""

import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from fault_proxy import FaultProxy
from rrpo_jax.train import scoring
from rrpo_jax.reader import Passage, ReaderUnavailableError, ResponseCache, make_reader
from rrpo_jax.reader.server import LlamaServer
from test_scoring import Cand, Ex

PASSAGES = [
    Passage("p1", "Eiffel Tower", "The Eiffel Tower in Paris was completed in 1889."),
    Passage("p2", "Louvre", "The Louvre is an art museum in Paris."),
    Passage("p3", "Seine", "The Seine is a river that flows through Paris."),
]
CANDS = [Cand(p.pid, p.title, p.text) for p in PASSAGES]
EXAMPLES = [
    Ex("q1", "When was the Eiffel Tower completed?", ["1889"], CANDS),
    Ex("q2", "Which river flows through Paris?", ["Seine"], CANDS),
    Ex("q3", "What is the Louvre?", ["art museum", "museum"], CANDS),
]
REF = np.array([[0, 1], [2, 0], [1, 2]])
ACT = np.array([[1, 0], [0, 2], [1, 0]])  # 11 distinct prefix prompts: q3 shows (1) on both sides
UNIQUE = 11
COUNTS: dict = {"injected": {}, "runs": 0, "survived": 0}
TIMEOUT = {"s": 8.0}  # the client's timeout: set from the clean pass's speed (a loaded machine answers slowly)


def _reader(base_url, **kw):
  config = {
      "backend": "openai",
      "base_url": base_url,
      "max_tokens": 4,
      "concurrency": 2,
      "timeout_s": TIMEOUT["s"],
      "max_retries": 8,
      "backoff_s": 0.05,
      "max_backoff_s": 0.5,
      **kw,
  }
  return make_reader(config)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  srv = LlamaServer(n_ctx=512, n_threads=1, n_batch=1, log_path=str(tmp_path_factory.mktemp("srv") / "server.log"))
  with srv:
    yield srv
  stats = os.environ.get("RRPO_JAX_FAULT_STATS")
  if stats:
    old = json.loads(open(stats, encoding="utf-8").read()) if os.path.exists(stats) else {}
    with open(stats, "w", encoding="utf-8") as f:
      json.dump({**old, "reader_proxy": COUNTS}, f)


@pytest.fixture(scope="module")
def clean(server):
  """Rewards of a clean pass, straight to the server; sets the client's timeout to 10x its time per
  request (two in flight queue behind each other on the one-slot server), at least 5 s."""
  res = scoring.ScoringStep(_reader(server.base_url, timeout_s=600)).score(EXAMPLES, REF, ACT)
  assert res.stats["reader_calls"] == UNIQUE and res.ok.all()
  TIMEOUT["s"] = max(5.0, 10 * 2 * res.stats["reader_seconds"] / UNIQUE)
  return res


@pytest.fixture
def proxy(server, clean):
  with FaultProxy(f"http://{server.host}:{server.port}", hang_s=TIMEOUT["s"] + 2, slow_s=1.0) as p:
    yield p


def _count(proxy, survived=True):
  for kind, n in proxy.injected.items():
    COUNTS["injected"][kind] = COUNTS["injected"].get(kind, 0) + n
  COUNTS["runs"] += 1
  COUNTS["survived"] += survived


def _same(res, clean, rows=slice(None)):
  np.testing.assert_array_equal(res.rewards[rows], clean.rewards[rows])
  np.testing.assert_array_equal(res.values[rows], clean.values[rows])


def test_transient_faults_are_retried_to_the_clean_rewards(proxy, clean, tmp_path):
  proxy.script = ["hang", "reset", "500", "500", "500", "429", "429", "slow", "truncated", "pass", "reset", "slow"]
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  res = scoring.ScoringStep(_reader(proxy.base_url), cache).score(EXAMPLES, REF, ACT)
  assert not proxy.script  # every scripted fault was served
  assert dict(proxy.injected) == {"hang": 1, "reset": 2, "500": 3, "429": 2, "slow": 2, "truncated": 1}
  _same(res, clean)
  assert res.ok.all() and res.stats["failed"] == 0 and res.stats["malformed"] == 0
  assert len(cache) == UNIQUE
  _count(proxy)


def test_malformed_replies_leave_the_update_and_the_cache(proxy, clean, tmp_path):
  proxy.script = ["cut_json", "pass", "not_json"]  # requests 1 and 3 (one at a time: q1's first two prefixes)
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  res = scoring.ScoringStep(_reader(proxy.base_url, concurrency=1), cache).score(EXAMPLES, REF, ACT)
  assert res.stats["malformed"] == 2 and res.stats["failed"] == 0
  assert res.ok.tolist() == [False, True, True]  # q1 carries no learning signal this step
  _same(res, clean, rows=slice(1, None))
  assert len(cache) == UNIQUE - 2  # nothing malformed was cached
  again = scoring.ScoringStep(_reader(proxy.base_url), cache).score(EXAMPLES, REF, ACT)
  assert again.stats["reader_calls"] == 2 and again.ok.all()  # only the malformed two are asked again
  _same(again, clean)
  _count(proxy)


def test_a_server_that_dies_and_comes_back(proxy, server, clean, tmp_path):
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  step = scoring.ScoringStep(_reader(proxy.base_url, max_retries=60, max_backoff_s=1.0), cache)
  result = {}
  worker = threading.Thread(target=lambda: result.update(res=step.score(EXAMPLES, REF, ACT)))
  worker.start()
  deadline = time.monotonic() + 300
  while proxy.forwarded == 0 and time.monotonic() < deadline:
    time.sleep(0.02)
  server.kill()  # requests in flight and the next ones get 502 from the proxy
  assert proxy.forwarded < UNIQUE, "the batch finished before the kill"
  time.sleep(1.0)
  server.proc = None
  server.start()  # same port
  worker.join(timeout=600)
  res = result["res"]
  _same(res, clean)
  assert res.ok.all() and len(cache) == UNIQUE
  COUNTS["injected"]["server_restart"] = COUNTS["injected"].get("server_restart", 0) + 1
  _count(proxy)


def test_a_server_that_stays_down_stops_with_one_line(proxy, server, tmp_path):
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  server.kill()
  try:
    with pytest.raises(ReaderUnavailableError) as info:
      scoring.ScoringStep(_reader(proxy.base_url, max_retries=3), cache).score(EXAMPLES, REF, ACT)
  finally:
    server.proc = None
    server.start()
  message = str(info.value)
  assert "\n" not in message and "failed 4 attempts; last: HTTP 502" in message and proxy.base_url in message
  assert len(cache) == 0
  COUNTS["injected"]["server_down"] = COUNTS["injected"].get("server_down", 0) + 1
  _count(proxy)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RRPO_JAX_FAULTS") != "long", reason="RRPO_JAX_FAULTS=long: three training runs")
def test_training_through_the_fault_proxy(proxy, server, tmp_path):
  """The trainer (sft -> rrpo, openai backend) through the proxy: transient faults, then the server
  dies for good (one clear stop, the checkpoint intact), comes back, and the rerun ends where a clean
  run does: the same rewards at every step, the same parameters, only good answers cached."""
  import sqlite3  # pylint: disable=import-outside-toplevel

  from test_faults_resume import _env, _params, _rows  # pylint: disable=import-outside-toplevel
  from test_train_smoke import ROOT, leaves, main_cmd  # pylint: disable=import-outside-toplevel

  overrides = (
      "mode=sft,rrpo",
      "reader.backend=openai",
      "reader.max_tokens=4",
      f"reader.timeout_s={3 * TIMEOUT['s']:.1f}",  # the trainer shares the CPU with the server
      "reader.max_retries=8",
      "reader.backoff_s=0.05",
      "reader.max_backoff_s=0.5",
      "reader.concurrency=2",
      "rrpo.steps=3",
      "progress=False",
  )
  env = _env(tmp_path / "xla_cache")
  run = lambda workdir, url: subprocess.run(  # noqa: E731
      main_cmd(workdir, *overrides, f"reader.base_url={url}"), cwd=ROOT, env=env, capture_output=True, text=True
  )
  clean = run(tmp_path / "clean", server.base_url)
  assert clean.returncode == 0, clean.stderr[-3000:]
  proxy.hang_s = 3 * TIMEOUT["s"] + 2
  proxy.script = ["500", "reset", "pass", "429", "slow", "truncated", "hang", "pass", "500", "500", "reset"]
  workdir = tmp_path / "faulted"
  proc = subprocess.Popen(
      main_cmd(workdir, *overrides, f"reader.base_url={proxy.base_url}"),
      cwd=ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  ckpt = workdir / "checkpoints" / "rrpo"
  deadline = time.monotonic() + 1200
  while proc.poll() is None and time.monotonic() < deadline and not (ckpt.is_dir() and "1" in os.listdir(ckpt)):
    time.sleep(0.05)
  server.kill()  # for good: the run must stop
  try:
    stderr = proc.communicate(timeout=600)[1]
  finally:
    server.proc = None
    server.start()
  assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
  assert not proxy.script  # the transient faults were all served before
  tail = stderr.strip().splitlines()[-2:]
  assert tail[0].startswith("rrpo_jax: ReaderUnavailableError: reader at") and "HTTP 502" in tail[0], tail
  assert tail[1].startswith("Training stopped at rrpo step ") and "its last checkpoint (step" in tail[1], tail
  resumed = run(workdir, proxy.base_url)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert _rows(workdir) == _rows(tmp_path / "clean")  # rewards, values, advantages, KL at every step
  for a, b in zip(leaves(_params(workdir, "rrpo", 3)), leaves(_params(tmp_path / "clean", "rrpo", 3)), strict=True):
    np.testing.assert_array_equal(a, b)
  counts = []
  for w in (workdir, tmp_path / "clean"):
    with sqlite3.connect(w / "reader_cache.sqlite") as db:
      counts.append(db.execute("SELECT COUNT(*), SUM(malformed) FROM responses").fetchone())
  assert counts[0] == counts[1] and counts[0][1] == 0  # the same answers cached, none malformed
  COUNTS["injected"]["server_down"] = COUNTS["injected"].get("server_down", 0) + 1
  _count(proxy)


def test_a_full_disk_keeps_the_cached_answers(tmp_path):
  """SQLite cannot grow its files (RLIMIT_FSIZE 0: EFBIG, as ENOSPC on a full disk): one CacheError
  that blames the disk, not the file, and every answer cached before is still there."""
  import resource  # pylint: disable=import-outside-toplevel

  from rrpo_jax.reader import CacheError, Request, Response  # pylint: disable=import-outside-toplevel

  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  req = lambda i: Request(f"q{i}", "When?", (PASSAGES[0],))  # noqa: E731
  cache.put_many({f"k{i}": (req(i), "id", Response(text="1889", raw="1889")) for i in range(50)})
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  big = {f"n{i}": (req(i), "id", Response(text="x" * 4000, raw="x" * 4000)) for i in range(200)}
  resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
  try:
    with pytest.raises(CacheError) as info:
      cache.put_many(big)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
  message = str(info.value)
  assert "the disk may be full" in message and "the answers already in it are intact" in message
  assert "not a healthy SQLite database" not in message and "\n" not in message
  cache.close()
  again = ResponseCache(str(tmp_path / "c.sqlite"))
  assert len(again) == 50 and again.get("k7").text == "1889"
  COUNTS["injected"]["cache_disk_full"] = COUNTS["injected"].get("cache_disk_full", 0) + 1
