"""The bundled samples: sizes, labels, BM25 candidates built on first use, cached, deterministic."""

import pathlib

import pytest

from rrpo_jax.data import load_sample, read_examples, recall_at_k, sample_path
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
