"""Response caches and prompt template: keys, one call per request, two writers, first answer
kept, corruption, where a run puts its cache. The guarantees run on both backends: SQLite on a
local file and PostgreSQL on a real server this session starts (conftest.postgres_server)."""

import dataclasses
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from rrpo_jax import config as config_lib
from rrpo_jax.config import validation as config_validation
from rrpo_jax.train import scoring
from rrpo_jax.reader import (
    CacheError,
    Passage,
    PromptTemplate,
    Request,
    Response,
    ResponseCache,
    cache_key,
    make_cache,
    make_template,
    per_host_path,
    postprocess,
)
from rrpo_jax.reader.postgres import PostgresCache
from rrpo_jax.reader.server import free_port
from test_scoring import LastTitleReader, make_example


def _req(qid="q", question="who?", pids=("p1", "p2")):
  return Request(qid, question, tuple(Passage(p, f"title {p}", f"text {p}") for p in pids))


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
  """Where a cache lives: a SQLite file (its folder not yet made) or a fresh PostgreSQL database."""
  if request.param == "sqlite":
    return str(tmp_path / "sub" / "c.sqlite")
  return request.getfixturevalue("postgres_url")


def _open(location):
  return make_cache({"cache_path": location})


def test_key_covers_identity_template_qid_question_and_order():
  base = cache_key("reader-a", "t1", _req())
  assert base == cache_key("reader-a", "t1", _req())
  others = [
      cache_key("reader-b", "t1", _req()),
      cache_key("reader-a", "t2", _req()),
      cache_key("reader-a", "t1", _req(qid="q2")),
      cache_key("reader-a", "t1", _req(question="what?")),
      cache_key("reader-a", "t1", _req(pids=("p2", "p1"))),
      cache_key("reader-a", "t1", _req(pids=("p1",))),
  ]
  assert len({base, *others}) == 1 + len(others)


def test_roundtrip_and_failures_never_stored(location):
  cache = _open(location)  # a SQLite file's folder is created
  good = Response(text="Paris", raw="Paris.\n", prompt_tokens=12, completion_tokens=3, latency_s=0.5)
  failed = Response(text="", ok=False, error="HTTP 400")
  malformed = Response(text="", malformed=True)
  items = {"k1": (_req(), "id", good), "k2": (_req(), "id", failed), "k3": (_req(), "id", malformed)}
  assert cache.put_many(items) == 1
  got = cache.get_many(["k1", "k2", "k3", "k1"])
  assert list(got) == ["k1"] and got["k1"].text == "Paris" and got["k1"].prompt_tokens == 12 and got["k1"].cached
  assert cache.stats() == {"cache_hits": 1, "cache_misses": 2, "cache_hit_rate": 1 / 3}
  cache.close()
  assert _open(location).get("k1").raw == "Paris.\n"  # persisted


def test_same_request_twice_costs_one_reader_call(location):
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader, _open(location))
  ex = [make_example("a"), make_example("a")]  # the same query twice in one batch
  order = np.array([[2, 0], [2, 0]])
  first = step.score(ex, order, order)  # policy == reference: 2 distinct prefixes in all
  assert len(reader.log) == 2 and first.stats["prefixes"] == 8 and first.stats["reader_calls"] == 2
  fresh = scoring.ScoringStep(reader, _open(location))  # no value memo
  second = fresh.score(ex, order, order)
  assert len(reader.log) == 2
  assert second.stats["cache_hits"] == 2 and second.stats["reader_calls"] == 0
  assert first.answers == second.answers == [["Paris", "city0"]] * 2
  np.testing.assert_array_equal(first.rewards, second.rewards)


_WRITER = textwrap.dedent("""
    import sys, time
    from rrpo_jax.reader import Passage, Request, Response, make_cache
    path, who, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cache = make_cache({"cache_path": path})
    while time.time() < start:
      time.sleep(0.001)
    for batch in range(40):
      items = {}
      for j in range(5):
        i = batch * 5 + j
        key = f"shared-{i}" if i % 2 else f"{who}-{i}"  # half the keys are written by both
        req = Request(key, "q", (Passage("p", "t", "x"),))
        items[key] = (req, "id", Response(text=f"answer {i}", prompt_tokens=i))
      cache.put_many(items)
      cache.get_many(list(items))
    """)


def test_two_processes_writing_at_once_lose_nothing(location):
  _open(location).close()
  start = time.time() + 1.5
  procs = [subprocess.Popen([sys.executable, "-c", _WRITER, location, who, str(start)]) for who in ("A", "B")]
  assert [p.wait(timeout=120) for p in procs] == [0, 0]
  cache = _open(location)
  # 200 keys per writer: 100 shared (odd i) + 100 own (even i) each -> 100 + 2 * 100 rows.
  assert len(cache) == 300
  got = cache.get_many([f"A-{i}" for i in range(0, 200, 2)] + [f"shared-{i}" for i in range(1, 200, 2)])
  assert len(got) == 200 and got["shared-199"].text == "answer 199"


def test_corrupted_file_gives_clear_error(tmp_path):
  path = tmp_path / "c.sqlite"
  cache = ResponseCache(str(path))
  cache.put_many({"k": (_req(), "id", Response(text="x"))})
  cache.close()
  path.write_bytes(b"this is not a database" * 300)
  with pytest.raises(CacheError, match="c.sqlite.*not a healthy SQLite database"):
    ResponseCache(str(path))


def test_prompt_template_layout_hash_and_postprocess():
  t = PromptTemplate()
  text = t.render("who built it?", _req().passages)
  assert text.index("[1] title p1\ntext p1") < text.index("[2] title p2") < text.index("Question: who built it?")
  assert text.endswith("Answer:")
  assert t.messages("q", ())[-1]["role"] == "user" and len(PromptTemplate(system="s").messages("q", ())) == 2
  assert PromptTemplate(instruction="x").hash != t.hash and PromptTemplate().hash == t.hash
  assert PromptTemplate(max_passage_chars=3).render("q", _req().passages).count("tex\n") == 2
  assert make_template({"instruction": "", "max_passage_chars": 0}) == t  # config sentinels mean "default"
  assert postprocess("\n  Answer: Paris.  \nmore") == "Paris."
  assert postprocess("  \n\n") == "" and postprocess("answer:\nBerlin") == "Berlin"
  assert postprocess("The answer to the question is:\n\n1889\nmore") == "1889"  # a lead-in line is skipped
  assert postprocess("The answer is:") == "The answer is:"


def test_make_cache_path(tmp_path):
  assert make_cache({"cache_path": ""}, str(tmp_path)).path == str(tmp_path / "reader_cache.sqlite")
  assert make_cache({"cache_path": str(tmp_path / "x.db")}).path == str(tmp_path / "x.db")
  with pytest.raises(ValueError, match="cache_path or a workdir"):
    make_cache({})


class _RacingReader(LastTitleReader):
  """Answers like LastTitleReader with a suffix of its own; while its first batch is out, `rival`
  (another process's scoring step, say) answers and stores the same requests first."""

  def __init__(self, tag, rival=None):
    super().__init__()
    self.tag, self.rival = tag, rival

  def _complete(self, requests):
    if self.rival is not None:
      rival, self.rival = self.rival, None
      rival()
    return [dataclasses.replace(r, raw=f"{r.raw.splitlines()[0]} {self.tag}") for r in super()._complete(requests)]


def test_the_first_stored_answer_is_what_every_writer_scores(location):
  """Two hosts miss the same prefixes at once and their (non-deterministic) readers disagree: both
  score the answer stored first, as a later reader of the cache would."""
  ex, order = [make_example("a")], np.array([[2, 0]])
  first = scoring.ScoringStep(_RacingReader("from-A"), _open(location))
  late = scoring.ScoringStep(_RacingReader("from-B", rival=lambda: first.score(ex, order, order)), _open(location))
  got = late.score(ex, order, order)
  assert got.answers == [["Paris from-A", "city0 from-A"]] and got.stats["reader_calls"] == 2  # B asked, A won
  again = scoring.ScoringStep(_RacingReader("from-C"), _open(location)).score(ex, order, order)
  assert again.answers == got.answers and again.stats["reader_calls"] == 0
  np.testing.assert_array_equal(got.rewards, again.rewards)


def test_unreachable_server_is_one_clear_line_without_the_password():
  with pytest.raises(CacheError) as e:
    PostgresCache(f"postgresql://rrpo:s3cret@127.0.0.1:{free_port()}/cache", timeout_s=2)
  message = str(e.value)
  assert "s3cret" not in message and "postgresql://rrpo@127.0.0.1" in message and "cannot connect" in message
  assert "\n" not in message


def test_where_a_run_puts_its_cache(tmp_path, monkeypatch, postgres_url):
  monkeypatch.setenv("RRPO_JAX_SCRATCH", str(tmp_path / "scratch"))
  local = make_cache({}, str(tmp_path / "run"))  # one process, local workdir: the workdir
  assert local.path == str(tmp_path / "run" / "reader_cache.sqlite")
  for workdir, processes in (("gs://bucket/run", 1), (str(tmp_path / "run"), 2)):
    per_host = make_cache({}, workdir, processes=processes)  # several hosts or an object store: local scratch
    assert per_host.path == per_host_path(workdir) and per_host.path.startswith(str(tmp_path / "scratch"))
  assert per_host_path("gs://bucket/run") != per_host_path("gs://bucket/other")
  assert isinstance(make_cache({"cache_path": postgres_url}, "gs://bucket/run", processes=4), PostgresCache)
  with pytest.raises(CacheError, match="unknown cache backend 'redis'"):
    make_cache({"cache_path": "redis://host/0"})
  c = config_lib.get_config()
  c.reader.cache_path = "redis://host/0"
  with pytest.raises(config_validation.ConfigError, match="reader.cache_path: unknown cache backend 'redis'"):
    config_validation.validate(c, num_devices=1)
