"""Reader benchmark: reader calls saved by the cache + dedup, and openai-backend concurrency.

1. Reader calls per training query over E epochs on the bundled NQ sample (train split, BM25 top-20
   candidates) through ScoringStep + ResponseCache, against the naive 2k per query per epoch. No
   trained reranker exists here, so the reference is the BM25 order and the policy is simulated:
   "dropout-greedy" = greedy top-k of (standardised BM25 score + sigma * N(0, 1)), fresh noise every
   epoch (the released loop's greedy top-k of a training-mode policy); "gumbel" = a Plackett-Luce
   sample (Gumbel-top-k at tau = 1 on the standardised scores), the most exploratory policy. The
   reader here only counts calls (answers are irrelevant to the count).
2. Requests/s through OpenAIReader with `--concurrency` requests in flight vs one at a time, against
   a local llama-cpp-python server on the SmolLM2 GGUF (127.0.0.1), same prompts, alternating runs.

  python bench/reader.py                 # 5.5-9.5 min measured on 2 cores shared with other jobs
  python bench/reader.py --requests=0    # part 1 only (about a minute)
With one server slot, concurrency can only overlap HTTP and queueing: expect a ratio near 1, and
on a busy machine repeat --rounds, since other processes swing single runs by 2-20x.
The last line prints the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from rrpo_jax import scoring
from rrpo_jax.data import load_sample
from rrpo_jax.reader import Reader, Response, ResponseCache, make_reader, postprocess
from rrpo_jax.reader.prompts import PromptTemplate
from rrpo_jax.reader.server import PARALLEL_SLOTS, LlamaServer


class CountingReader(Reader):
  """Answers "" at once; ScoringStep's stats count what reaches it."""

  backend = "counting"

  def __init__(self):
    super().__init__(template=PromptTemplate(), max_tokens=1, postprocess=postprocess)

  def _settings(self):
    return {}

  def _complete(self, requests):
    return [Response(text="", raw="") for _ in requests]


def _policy(scores: np.ndarray, kind: str, sigma: float, k: int, rng: np.random.Generator) -> np.ndarray:
  z = (scores - scores.mean(-1, keepdims=True)) / (scores.std(-1, keepdims=True) + 1e-6)
  noise = rng.gumbel(size=z.shape) if kind == "gumbel" else sigma * rng.standard_normal(z.shape)
  return np.argsort(-(z + noise), axis=-1, kind="stable")[:, :k].astype(np.int32)


def calls_per_query(examples, *, k: int, epochs: int, batch: int, kind: str, sigma: float, seed: int = 0) -> dict:
  """Runs `epochs` passes of ScoringStep over the examples; returns call counts."""
  rng = np.random.default_rng(seed)
  scores = np.array([[c.score for c in ex.candidates] for ex in examples], np.float32)
  ref = np.argsort(-scores, axis=-1, kind="stable")[:, :k].astype(np.int32)
  with tempfile.TemporaryDirectory() as tmp:
    step = scoring.ScoringStep(CountingReader(), ResponseCache(f"{tmp}/cache.sqlite"))
    for _ in range(epochs):
      order = rng.permutation(len(examples))
      for lo in range(0, len(order), batch):
        idx = order[lo:lo + batch]
        step.score([examples[i] for i in idx], ref[idx], _policy(scores[idx], kind, sigma, k, rng))
    stats = step.run_stats()
  n = len(examples)
  return {"calls_per_query": stats["reader_calls"] / n, "naive_per_query": 2 * k * epochs,
          "fewer": 1 - stats["reader_calls"] / (2 * k * epochs * n), "cache_hit_rate": stats["cache_hit_rate"]}


def throughput(examples, *, n_requests: int, concurrency: int, max_tokens: int, k: int, rounds: int) -> dict:
  """Requests/s, one at a time vs `concurrency` in flight, same prompts, alternating runs."""
  from rrpo_jax.reader import Passage, Request  # pylint: disable=import-outside-toplevel
  reqs = []
  for ex in examples:
    for t in range(1, k + 1):
      reqs.append(Request(ex.qid, ex.question, tuple(Passage(c.pid, c.title, c.text) for c in ex.candidates[:t])))
  reqs = reqs[:n_requests]
  rates = {1: [], concurrency: []}
  with LlamaServer(n_ctx=2048) as server:
    readers = {c: make_reader({"backend": "openai", "base_url": server.base_url, "max_tokens": max_tokens,
                               "concurrency": c, "timeout_s": 300}) for c in rates}
    readers[1].answer(reqs[:2])  # warm-up
    for _ in range(rounds):
      for c, reader in readers.items():
        start = time.perf_counter()
        out = reader.answer(reqs)
        assert all(r.ok for r in out), [r.error for r in out if not r.ok]
        rates[c].append(len(reqs) / (time.perf_counter() - start))
        print(f"  concurrency {c}: {rates[c][-1]:.2f} req/s", flush=True)
    threads = server.n_threads
  seq, conc = statistics.median(rates[1]), statistics.median(rates[concurrency])
  return {"seq": seq, "conc": conc, "ratio": conc / seq, "threads": threads}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--queries", type=int, default=0, help="NQ train queries (0 = all 2,255)")
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--k", type=int, default=3)
  p.add_argument("--batch", type=int, default=16, help="queries per scoring step")
  p.add_argument("--sigmas", default="0.1,0.3,1.0", help="dropout-greedy noise levels (z-score units)")
  p.add_argument("--requests", type=int, default=12, help="prompts per throughput run (0 = skip part 2)")
  p.add_argument("--concurrency", type=int, default=4)
  p.add_argument("--max_tokens", type=int, default=16)
  p.add_argument("--rounds", type=int, default=2)
  args = p.parse_args()

  examples = load_sample("nq", "train", limit=args.queries or None)
  print(f"part 1: {len(examples)} NQ train queries, k={args.k}, {args.epochs} epochs, batch {args.batch}")
  results = {}
  for sigma in [float(s) for s in args.sigmas.split(",") if s]:
    results[f"dropout-greedy sigma={sigma}"] = calls_per_query(
        examples, k=args.k, epochs=args.epochs, batch=args.batch, kind="greedy", sigma=sigma)
  results["gumbel tau=1"] = calls_per_query(examples, k=args.k, epochs=args.epochs, batch=args.batch,
                                            kind="gumbel", sigma=0.0)
  for name, r in results.items():
    print(f"  {name}: {r['calls_per_query']:.2f} calls/query vs naive {r['naive_per_query']} "
          f"({100 * r['fewer']:.1f}% fewer, cache hit rate {100 * r['cache_hit_rate']:.1f}%)")
  summary = "; ".join(f"{name}: {r['calls_per_query']:.2f}/{r['naive_per_query']} calls/query "
                      f"({100 * r['fewer']:.0f}% fewer)" for name, r in results.items())
  if args.requests:
    print(f"part 2: {args.requests} NQ prefix prompts, max_tokens {args.max_tokens}, llama-cpp-python server "
          f"(SmolLM2-135M Q4_1), parallel slots {PARALLEL_SLOTS}")
    t = throughput(examples[:args.requests], n_requests=args.requests, concurrency=args.concurrency,
                   max_tokens=args.max_tokens, k=args.k, rounds=args.rounds)
    summary += (f" | openai backend: {t['conc']:.2f} req/s at concurrency {args.concurrency} vs {t['seq']:.2f} "
                f"one at a time (x{t['ratio']:.2f}; server parallel slots {PARALLEL_SLOTS}, {t['threads']} threads)")
  print("RESULT " + summary)


if __name__ == "__main__":
  main()
