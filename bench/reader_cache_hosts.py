"""Reader calls per query with 1, 2 and 4 hosts: one SQLite cache per host vs one shared PostgreSQL cache.

Each simulated host is what a process of a multi-host run holds: its own ScoringStep (reader, value
memo) and either its own SQLite file or a connection to the one PostgreSQL server (a real one,
started here: reader/postgres_server.py). Over --epochs passes of the bundled NQ sample's first
--queries training questions, every global step gives each host its slice of the batch exactly as
the trainer's loader does (rrpo_jax.data.Loader with process_index / process_count: the order is
reshuffled every epoch, so a query meets a different host from one epoch to the next). The
reference is the BM25 order's top k; the policy is the released loop's dropout-greedy top k,
simulated as greedy top-k of (standardised BM25 score + sigma * N(0, 1)) with fresh noise per query
and epoch, the same episodes whatever the number of hosts. The reader is the fake backend: the
quantity is a count of calls, not a time. Ratios are against 1 host, in the same run.

  python bench/reader_cache_hosts.py     # 5 s of CPU; 1.7 min wall on 2 busy cores
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from rrpo_jax.train import scoring
from rrpo_jax.data import Loader, load_sample
from rrpo_jax.reader import ResponseCache, make_reader
from rrpo_jax.reader.postgres import PostgresCache
from rrpo_jax.reader.postgres_server import LocalPostgres


def episodes(examples, *, n: int, k: int, epochs: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Reference top-k int32[Q, k] and the policy's actions int32[epochs, Q, k] among the first n candidates."""
  scores = np.array([[c.score for c in ex.candidates[:n]] for ex in examples], np.float32)
  ref = np.argsort(-scores, axis=-1, kind="stable")[:, :k].astype(np.int32)
  z = (scores - scores.mean(-1, keepdims=True)) / (scores.std(-1, keepdims=True) + 1e-6)
  actions = np.stack(
      [
          np.argsort(-(z + sigma * np.random.default_rng([seed, e]).standard_normal(z.shape)), axis=-1)[:, :k]
          for e in range(epochs)
      ]
  ).astype(np.int32)
  return ref, actions


def reader_calls(examples, ref, actions, *, hosts: int, batch: int, make_cache, seed: int) -> dict:
  """Runs every epoch's global steps over `hosts` simulated hosts; returns summed call counts."""
  loaders = [
      Loader(
          examples,
          lambda exs: {},
          batch_size=batch,
          n=1,  # only the loader's order is used here, not its batches
          seed=seed,
          process_index=p,
          process_count=hosts,
      )
      for p in range(hosts)
  ]
  steps = [scoring.ScoringStep(make_reader({"backend": "fake"}), make_cache(p)) for p in range(hosts)]
  for epoch in range(actions.shape[0]):
    for s in range(loaders[0].steps_per_epoch):
      for loader, step in zip(loaders, steps):
        idx = loader.indices(epoch, s)
        idx = idx[idx >= 0]
        if idx.size:
          step.score([examples[i] for i in idx], ref[idx], actions[epoch][idx])
  for step in steps:
    step.cache.close()
  totals = {name: sum(step.run_stats()[name] for step in steps) for name in ("reader_calls", "queries", "prefixes")}
  return {**totals, "calls_per_query": totals["reader_calls"] / totals["queries"]}


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--queries", type=int, default=300)
  ap.add_argument("--epochs", type=int, default=3)
  ap.add_argument("--batch", type=int, default=8, help="global batch (divisible by every host count)")
  ap.add_argument("--n", type=int, default=12, help="BM25 candidates per query")
  ap.add_argument("--k", type=int, default=3)
  ap.add_argument("--sigma", type=float, default=0.5, help="dropout-greedy noise on standardised scores")
  ap.add_argument("--hosts", default="1,2,4")
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()
  examples = load_sample("nq", "train", limit=args.queries)  # BM25 top 20, of which the first --n are used
  ref, actions = episodes(examples, n=args.n, k=args.k, epochs=args.epochs, sigma=args.sigma, seed=args.seed)
  host_counts = [int(h) for h in args.hosts.split(",")]
  rows = {}
  with LocalPostgres() as server, tempfile.TemporaryDirectory() as tmp:
    for hosts in host_counts:
      for backend in ("sqlite", "postgres"):
        if backend == "sqlite":
          run = os.path.join(tmp, f"h{hosts}")
          make_cache = lambda p, run=run: ResponseCache(os.path.join(run, f"host{p}.sqlite"))  # noqa: E731
        else:
          url = server.create_database(f"h{hosts}")
          make_cache = lambda p, url=url: PostgresCache(url)  # noqa: E731
        rows[hosts, backend] = reader_calls(
            examples, ref, actions, hosts=hosts, batch=args.batch, make_cache=make_cache, seed=args.seed
        )
  print(
      f"reader calls over {args.epochs} epochs of {len(examples)} NQ train queries (N={args.n}, k={args.k}, global "
      f"batch {args.batch}, dropout-greedy sigma={args.sigma}); per query and epoch, naive = 2k = {2 * args.k}"
  )
  print(f"{'hosts':>5}  {'per-host SQLite':>28}  {'shared PostgreSQL':>28}")
  base = {backend: rows[host_counts[0], backend]["reader_calls"] for backend in ("sqlite", "postgres")}
  for hosts in host_counts:
    cells = []
    for backend in ("sqlite", "postgres"):
      r = rows[hosts, backend]
      cells.append(
          f"{r['reader_calls']:>6.0f} ({r['calls_per_query']:.3f}/q) {r['reader_calls'] / base[backend]:>5.2f}x"
      )
    print(f"{hosts:>5}  {cells[0]:>28}  {cells[1]:>28}")


if __name__ == "__main__":
  main()
