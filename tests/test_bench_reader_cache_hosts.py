"""bench/reader_cache_hosts.py on a few queries: one shared cache keeps the single-host call count
whatever the number of hosts; one cache per host pays again for a query that moved host."""

import importlib.util
import os

from rrpo_jax.data import load_sample
from rrpo_jax.reader import ResponseCache
from rrpo_jax.reader.postgres import PostgresCache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
  spec = importlib.util.spec_from_file_location(
      "bench_cache_hosts", os.path.join(ROOT, "bench", "reader_cache_hosts.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_shared_cache_keeps_the_single_host_count(tmp_path, postgres_server):
  bench = _bench()
  examples = load_sample("nq", "train", limit=24)
  ref, actions = bench.episodes(examples, n=12, k=3, epochs=3, sigma=0.5, seed=0)
  calls = {}
  for hosts in (1, 2, 4):
    url = postgres_server.create_database(f"bench_h{hosts}")
    calls[hosts, "shared"] = bench.reader_calls(
        examples, ref, actions, hosts=hosts, batch=4, make_cache=lambda p, url=url: PostgresCache(url), seed=0
    )["reader_calls"]
    run = tmp_path / f"h{hosts}"
    calls[hosts, "per_host"] = bench.reader_calls(
        examples,
        ref,
        actions,
        hosts=hosts,
        batch=4,
        make_cache=lambda p, run=run: ResponseCache(str(run / f"host{p}.sqlite")),
        seed=0,
    )["reader_calls"]
  # 24 queries x 3 epochs x 2k = 432 prefixes at most; the reference's 3 per query are asked once
  # per cache, so one host asks at least 24 * 3 and at most 24 * 3 + 24 * 3 * 3.
  assert 72 <= calls[1, "shared"] <= 72 + 216
  assert calls[1, "shared"] == calls[2, "shared"] == calls[4, "shared"] == calls[1, "per_host"]
  assert calls[1, "per_host"] < calls[2, "per_host"] < calls[4, "per_host"]
