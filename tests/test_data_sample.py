"""The bundled samples: sizes, labels, BM25 candidates built on first use, cached, deterministic."""

import math
import pathlib

import pytest

from rrpo_jax.data import load_sample, read_examples, recall_at_k, sample, sample_path
from rrpo_jax.data.bm25 import order_candidates
from rrpo_jax.data.example import Candidate, Example
from rrpo_jax.data.sample import SAMPLE_DIR


@pytest.fixture(scope="module")
def cache(request):
  return request.config.cache.mkdir("rrpo_jax_data")


def test_nq_sample(cache):
  sizes = {s: len(load_sample("nq", s, cache_dir=cache)) for s in ("train", "dev", "test")}
  assert sizes == {"train": 2255, "dev": 200, "test": 200}
  dev = load_sample("nq", "dev", cache_dir=cache)
  assert all(len(e.candidates) == 20 and e.meta["gold_pid"] for e in dev)
  assert all(c.is_supporting is None for e in dev for c in e.candidates)  # NQ gives no labels
  scores = [[c.score for c in e.candidates] for e in dev]
  assert all(s == sorted(s, reverse=True) for s in scores)
  r = recall_at_k(dev, [1, 20])
  assert 0.6 < r["has_answer@1"] < r["has_answer@20"] and r["has_answer@20"] > 0.9
  assert load_sample("nq", "dev", limit=7, cache_dir=cache) == dev[:7]
  ids = {e.qid for s in ("train", "dev", "test") for e in load_sample("nq", s, cache_dir=cache)}
  assert len(ids) == 2655  # splits are disjoint


def test_hotpotqa_sample(cache):
  train, dev = load_sample("hotpotqa", "train", cache_dir=cache), load_sample("hotpotqa", "dev", cache_dir=cache)
  assert (len(train), len(dev)) == (250, 100)
  assert {e.qid for e in train}.isdisjoint(e.qid for e in dev)
  for e in train + dev:
    assert len(e.candidates) in (4, 10) and sum(c.is_supporting for c in e.candidates) == 2
    scores = [c.score for c in e.candidates]
    assert scores == sorted(scores, reverse=True)  # BM25 order, with the BM25 scores
  # The source files' order puts a supporting paragraph first for 11 of the 100 dev questions
  # (positions 0-9 about uniformly); BM25 over the paragraph pool does for 81.
  first = sum(e.candidates[0].is_supporting for e in dev)
  assert first >= 70, first
  assert sum(any(c.is_supporting for c in e.candidates[:3]) for e in dev) >= 85


def test_order_candidates_by_hand():
  # Pool: P0 "alpha beta", P1 "gamma delta" (N = 2, both 2 tokens, avgdl 2). For "alpha?": df = 1,
  # idf = ln(1 + (2 - 1 + 0.5) / (1 + 0.5)) = ln 2, tf = 1, k1 (1 - b + b dl/avgdl) = 0.9:
  # score(P0) = ln 2 * 1 / (1 + 0.9) = 0.36481; score(P1) = 0.
  p0, p1 = Candidate("p0", "", "alpha beta"), Candidate("p1", "", "gamma delta")
  ex = [Example("q0", "alpha?", ["a"], [p1, p0]), Example("q1", "omega?", ["a"], [p1, p0])]
  out = order_candidates(ex, k1=0.9, b=0.4)
  assert [c.pid for c in out[0].candidates] == ["p0", "p1"]
  assert out[0].candidates[0].score == pytest.approx(math.log(2) / 1.9, rel=1e-5) and out[0].candidates[1].score == 0.0
  assert [c.pid for c in out[1].candidates] == ["p1", "p0"]  # no match anywhere: ties keep the given order
  assert [c.pid for c in ex[0].candidates] == ["p1", "p0"] and p0.score is None  # the input is left alone


def test_a_cached_source_order_hotpotqa_file_is_not_reused(tmp_path):
  # A cache written before the BM25 order (sample version 2) is never read: the version names the file.
  old = tmp_path / "sample" / f"hotpotqa-{sample._fingerprint('hotpotqa', 10, version='2')}" / "dev.top10.jsonl"
  old.parent.mkdir(parents=True)
  old.write_text("stale\n")
  path = sample_path("hotpotqa", "dev", cache_dir=tmp_path, show_progress=False)
  assert pathlib.Path(path) != old and pathlib.Path(path).parent.parent == old.parent.parent
  examples, _ = read_examples(path, format="dpr")
  assert len(examples) == 100 and all(c.score is not None for e in examples for c in e.candidates)
  assert sample._VERSIONS["nq"] == "2"  # NQ's cache name (and content) did not change


def test_cached_and_deterministic(cache, tmp_path):
  path = pathlib.Path(sample_path("nq", "dev", cache_dir=cache))
  mtime = path.stat().st_mtime_ns
  assert sample_path("nq", "dev", cache_dir=cache) == str(path) and path.stat().st_mtime_ns == mtime
  fresh = pathlib.Path(sample_path("nq", "dev", n=5, cache_dir=tmp_path))
  a, _ = read_examples(fresh, format="dpr")
  b, _ = read_examples(path, format="dpr")
  assert [[c.pid for c in e.candidates] for e in a] == [[c.pid for c in e.candidates[:5]] for e in b]
  assert not any(p.name.endswith(".tmp") or ".tmp" in p.name for p in fresh.parent.iterdir())


def test_bad_names():
  with pytest.raises(ValueError, match="unknown sample"):
    sample_path("squad", "dev")
  with pytest.raises(ValueError, match="splits"):
    sample_path("hotpotqa", "test")


def test_package_never_reads_shared_data():
  root = pathlib.Path(__file__).resolve().parent.parent / "rrpo_jax" / "data"
  for path in root.rglob("*.py"):
    assert "shared/data" not in path.read_text(encoding="utf-8"), path
  assert (SAMPLE_DIR / "SOURCE.md").exists()
  assert sum(f.stat().st_size for f in SAMPLE_DIR.rglob("*") if f.is_file()) < 4 * 2**20
