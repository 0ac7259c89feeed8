"""Reader benchmark: reader calls saved by the cache + dedup, and openai-backend concurrency.

1. Reader calls per training query over E epochs on the bundled NQ sample (train split, BM25 top-20
   candidates) through ScoringStep + ResponseCache, against the naive 2k per query per epoch.
   Simulated policies (always run): the reference is the BM25 order and the policy is simulated:
   "dropout-greedy" = greedy top-k of (standardised BM25 score + sigma * N(0, 1)), fresh noise every
   epoch (the released loop's greedy top-k of a training-mode policy); "gumbel" = a Plackett-Luce
   sample (Gumbel-top-k at tau = 1 on the standardised scores), the most exploratory policy. The
   reader here only counts calls (answers are irrelevant to the count).
   With --model=DIR (an exported reranker: config.json + model.safetensors), also a REAL policy: the
   reference is that cross-encoder's greedy top-k in eval mode (no dropout), the policy the same
   model in training mode (dropout on, a fresh dropout key each epoch): its greedy top-k (the
   released loop, rrpo.selection=greedy) and a Plackett-Luce sample from its scores
   (rrpo.selection=sample, tau = --real_temperature), on the first --real_queries train queries'
   top --real_n BM25 candidates, scored once per epoch per policy; same ScoringStep + cache.
2. Requests/s through OpenAIReader with `--concurrency` requests in flight vs one at a time, against
   a local llama-cpp-python server on the SmolLM2 GGUF (127.0.0.1), same prompts, alternating runs.
3. With --likelihood=N: reader seconds per training episode with and without the likelihood reward
   (reward.lambda_ll = 0 vs 1) on N NQ train queries and the in-process --likelihood_model reader:
   one episode = the reference's k prefixes (BM25 order) and a Gumbel-top-k sample's k prefixes,
   scored by a ScoringStep without a cache (every call is real); the two settings alternate per
   query (which goes first alternates too), so a busy machine slows both alike. The ratio
   with/without is the cost of the term (its scores reuse the answer's KV cache: Reader.ask).

  python bench/reader.py                 # 5.5-9.5 min measured on 2 cores shared with other jobs
  python bench/reader.py --requests=0    # part 1 only (about a minute)
  python bench/reader.py --requests=0 --queries=1 --epochs=1 --sigmas= --likelihood=40   # part 3
  python bench/reader.py --requests=0 --model=/tmp/sft_bench/nq_default2_sft_step60   # + real reranker (8 min measured, busy 2 cores)
A supervised reranker to pass as --model (the bench trains nothing): export a warm-up checkpoint,
  python -m rrpo_jax.main --config=configs/nq.py --workdir=/tmp/sft_bench --config.mode=export \
      --config.rrpo.init_from=<run>/checkpoints/sft --config.export.path=/tmp/sft_bench/nq_default2_sft_step60
or run the warm-up itself: --config.mode=sft,export (a few minutes of CPU). The figures in docs/benchmarks.md
use a 400-step warm-up (17 min on 2 cores; reference answer@3 91.0% vs BM25 87.0% on these queries):
  python -m rrpo_jax.main --config=configs/nq.py --workdir=/tmp/sft400 --config.mode=sft,export \
      --config.sft.steps=400 --config.sft.warmup_steps=20 --config.export.which=latest \
      --config.export.path=/tmp/sft400/export
The more confident the reference, the more often the dropout policy repeats it (and itself), so the
savings grow with the warm-up: 56% after 60 steps, 65% after 400 (dropout-greedy).
With one server slot, concurrency can only overlap HTTP and queueing: expect a ratio near 1, and
on a busy machine repeat --rounds, since other processes swing single runs by 2-20x.
The last line prints the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from rrpo_jax.train import scoring
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
  """Runs `epochs` passes of ScoringStep over the examples, each batch's selections drawn by _policy;
  returns call counts."""
  rng = np.random.default_rng(seed)
  scores = np.array([[c.score for c in ex.candidates] for ex in examples], np.float32)
  ref = np.argsort(-scores, axis=-1, kind="stable")[:, :k].astype(np.int32)
  return _replay(
      examples, ref, lambda idx, _: _policy(scores[idx], kind, sigma, k, rng), epochs, k=k, batch=batch, rng=rng
  )


def _count(examples, ref: np.ndarray, actions_per_epoch, *, k: int, batch: int, seed: int = 0) -> dict:
  """Feeds fixed selections (one int[Q, k] per epoch) through ScoringStep + ResponseCache in a
  shuffled batch order per epoch, exactly like calls_per_query; returns call counts."""
  rng = np.random.default_rng(seed)
  acts = lambda idx, epoch: actions_per_epoch[epoch][idx]
  return _replay(examples, ref, acts, len(actions_per_epoch), k=k, batch=batch, rng=rng)


def _replay(examples, ref: np.ndarray, actions, epochs: int, *, k: int, batch: int, rng: np.random.Generator) -> dict:
  """`epochs` shuffled passes of ScoringStep + ResponseCache (a counting reader) over the examples,
  actions(idx int[B], epoch) -> int[B, k] the selections of each batch; returns call counts against
  the 2 k calls a query an epoch of no cache."""
  with tempfile.TemporaryDirectory() as tmp:
    step = scoring.ScoringStep(CountingReader(), ResponseCache(f"{tmp}/cache.sqlite"))
    for epoch in range(epochs):
      order = rng.permutation(len(examples))
      for lo in range(0, len(order), batch):
        idx = order[lo : lo + batch]
        step.score([examples[i] for i in idx], ref[idx], actions(idx, epoch))
    stats = step.run_stats()
  n = len(examples)
  return {
      "calls_per_query": stats["reader_calls"] / n,
      "naive_per_query": 2 * k * epochs,
      "fewer": 1 - stats["reader_calls"] / (2 * k * epochs * n),
      "cache_hit_rate": stats["cache_hit_rate"],
  }


def real_policies(
    examples, model: str, *, n: int, max_length: int, k: int, epochs: int, chunk: int, temperature: float, seed: int = 0
) -> dict:
  """Reference top-k (eval mode) and per-epoch policy selections (training mode, dropout) of a real
  cross-encoder; returns {"ref": int[Q, k], "dropout-greedy": [int[Q, k]] * epochs,
  "dropout-pl-sample": [...], plus diagnostics}."""
  import jax  # pylint: disable=import-outside-toplevel
  from rrpo_jax.core import plackett_luce  # pylint: disable=import-outside-toplevel
  from rrpo_jax.models.reranker import Reranker  # pylint: disable=import-outside-toplevel
  from rrpo_jax.core import cpu_kernels, kernels  # pylint: disable=import-outside-toplevel

  kernels.use(cpu_kernels.select("auto"))  # the trainer's default kernel set (config.kernels)
  reranker = Reranker.from_pretrained(model, max_length=max_length)
  if reranker.load_report is not None and reranker.load_report.missing:
    raise SystemExit(
        f"--model={model}: weights missing ({reranker.load_report.missing}); "
        "pass a trained reranker, not a plain encoder"
    )
  t0 = time.perf_counter()
  chunks = []  # (rows, inputs [chunk, n, L], where [chunk, n]); the last chunk padded with empty queries
  for lo in range(0, len(examples), chunk):
    part = examples[lo : lo + chunk]
    pad = chunk - len(part)
    enc = reranker.encoder.encode(
        [ex.question for ex in part] + [""] * pad,
        [[(c.title, c.text) for c in ex.candidates[:n]] for ex in part] + [[]] * pad,
        n=n,
    )
    where = enc.pop("where")
    chunks.append((len(part), enc, where))
  tokenize_s = time.perf_counter() - t0

  apply = jax.jit(lambda params, inputs, key: reranker.apply(params, inputs, key=key))
  apply_eval = jax.jit(lambda params, inputs: reranker.apply(params, inputs, key=None))
  greedy = jax.jit(plackett_luce.greedy, static_argnames=("k",))
  sample = jax.jit(plackett_luce.sample, static_argnames=("k", "temperature"))
  base = jax.random.key(seed)

  def run(score_fn, select_fn):
    out = []
    for c, (rows, inputs, where) in enumerate(chunks):
      s = score_fn(c, inputs)
      out.append(np.asarray(select_fn(c, s, where))[:rows])
    return np.concatenate(out).astype(np.int32)

  t0 = time.perf_counter()
  ref = run(lambda c, x: apply_eval(reranker.params, x), lambda c, s, w: greedy(s, k=k, where=w))
  out = {"ref": ref, "dropout-greedy": [], f"dropout-pl-sample tau={temperature:g}": [], "tokenize_s": tokenize_s}
  for e in range(epochs):
    drop_key = jax.random.fold_in(base, e)  # fresh dropout each epoch (and each chunk)
    pl_key = jax.random.fold_in(base, 1_000_000 + e)
    scores = [apply(reranker.params, x, jax.random.fold_in(drop_key, c)) for c, (_, x, _) in enumerate(chunks)]
    out["dropout-greedy"].append(run(lambda c, x: scores[c], lambda c, s, w: greedy(s, k=k, where=w)))
    out[f"dropout-pl-sample tau={temperature:g}"].append(
        run(
            lambda c, x: scores[c],
            lambda c, s, w: sample(s, key=jax.random.fold_in(pl_key, c), k=k, temperature=temperature, where=w),
        )
    )
  out["score_s"] = time.perf_counter() - t0
  # Diagnostics: is it a real reranker (answer-bearing passage in the reference top-k vs BM25's),
  # and how far the dropout policy strays from the reference.
  has = np.array([[c.has_answer for c in ex.candidates[:n]] for ex in examples], bool)
  rows = np.arange(len(examples))[:, None]
  out["ref_answer_at_k"] = float(has[rows, ref].any(-1).mean())
  out["bm25_answer_at_k"] = float(has[:, :k].any(-1).mean())
  out["model_desc"] = (
      f"{reranker.base_model} ({reranker.config.family}, {reranker.config.num_layers} layers, "
      f"dropout {reranker.config.hidden_dropout:g}/{reranker.config.attention_dropout:g}) from {model}"
  )
  return out


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
    readers = {
        c: make_reader(
            {
                "backend": "openai",
                "base_url": server.base_url,
                "max_tokens": max_tokens,
                "concurrency": c,
                "timeout_s": 300,
            }
        )
        for c in rates
    }
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


def likelihood_cost(examples, *, model: str, k: int, max_tokens: int, seed: int = 0) -> dict:
  """Part 3: reader seconds per episode, answers only vs answers + likelihood scores (see the docstring)."""
  rng = np.random.default_rng(seed)
  reader = make_reader({"backend": "llama_cpp", "model": model, "max_tokens": max_tokens})
  steps = {
      name: scoring.ScoringStep(reader, None, weights={"em": 1.0, "f1": 1.0, "hit": 1.0, "likelihood": w})
      for name, w in (("without", 0.0), ("with", 1.0))
  }
  seconds = {"without": [], "with": []}
  try:
    for i, ex in enumerate(examples):
      scores = np.array([[c.score for c in ex.candidates]], np.float32)
      ref = np.argsort(-scores, axis=-1, kind="stable")[:, :k].astype(np.int32)
      act = _policy(scores, "gumbel", 0.0, k, rng)
      for name in ("without", "with") if i % 2 == 0 else ("with", "without"):
        steps[name]._values.clear()  # pylint: disable=protected-access  (no value memo: the reference is asked too)
        res = steps[name].score([ex], ref, act)
        seconds[name].append(res.stats["reader_seconds"])
  finally:
    reader.close()
  out = {name: float(np.mean(v)) for name, v in seconds.items()}
  out["ratio"] = out["with"] / out["without"]
  out["ratio_median"] = float(np.median(np.array(seconds["with"]) / np.array(seconds["without"])))
  out["episodes"] = len(examples)
  return out


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
  p.add_argument("--model", default="", help="exported reranker dir for the real-policy measurement ('' = skip)")
  p.add_argument("--real_queries", type=int, default=300, help="NQ train queries for the real measurement")
  p.add_argument("--real_n", type=int, default=12, help="candidates per query (BM25 top-N) the reranker scores")
  p.add_argument("--real_max_length", type=int, default=128, help="tokens per (query, passage) pair")
  p.add_argument("--real_chunk", type=int, default=16, help="queries per scoring call of the reranker")
  p.add_argument("--real_temperature", type=float, default=1.0, help="Plackett-Luce temperature of the sampled policy")
  p.add_argument("--likelihood", type=int, default=0, help="part 3: NQ train queries (0 = skip)")
  p.add_argument("--likelihood_model", default="gemma3-270m", help="part 3: the in-process reader (GGUF alias)")
  args = p.parse_args()

  examples = load_sample("nq", "train", limit=args.queries or None)
  print(f"part 1: {len(examples)} NQ train queries, k={args.k}, {args.epochs} epochs, batch {args.batch}")
  results = {}
  for sigma in [float(s) for s in args.sigmas.split(",") if s]:
    results[f"dropout-greedy sigma={sigma}"] = calls_per_query(
        examples, k=args.k, epochs=args.epochs, batch=args.batch, kind="greedy", sigma=sigma
    )
  results["gumbel tau=1"] = calls_per_query(
      examples, k=args.k, epochs=args.epochs, batch=args.batch, kind="gumbel", sigma=0.0
  )
  for name, r in results.items():
    print(
        f"  {name}: {r['calls_per_query']:.2f} calls/query vs naive {r['naive_per_query']} "
        f"({100 * r['fewer']:.1f}% fewer, cache hit rate {100 * r['cache_hit_rate']:.1f}%)"
    )
  summary = "simulated: " + "; ".join(
      f"{name}: {r['calls_per_query']:.2f}/{r['naive_per_query']} calls/query " f"({100 * r['fewer']:.0f}% fewer)"
      for name, r in results.items()
  )
  if args.model:
    real_ex = load_sample("nq", "train", limit=args.real_queries)
    print(
        f"part 1b (real reranker): {len(real_ex)} NQ train queries (the first of the shuffled split), "
        f"N={args.real_n} BM25 candidates, max_length {args.real_max_length}, k={args.k}, {args.epochs} epochs, "
        f"batch {args.batch}",
        flush=True,
    )
    pol = real_policies(
        real_ex,
        args.model,
        n=args.real_n,
        max_length=args.real_max_length,
        k=args.k,
        epochs=args.epochs,
        chunk=args.real_chunk,
        temperature=args.real_temperature,
    )
    print(f"  model: {pol['model_desc']}")
    print(
        f"  reference = its greedy top-{args.k} in eval mode; answer-bearing passage in top-{args.k}: "
        f"reference {100 * pol['ref_answer_at_k']:.1f}% vs BM25 {100 * pol['bm25_answer_at_k']:.1f}% "
        f"(tokenise {pol['tokenize_s']:.0f} s, score {pol['score_s']:.0f} s)"
    )
    real = {}
    for name in ("dropout-greedy", f"dropout-pl-sample tau={args.real_temperature:g}"):
      acts = pol[name]
      same = np.mean([np.all(a == pol["ref"], axis=-1).mean() for a in acts])
      r = _count(real_ex, pol["ref"], acts, k=args.k, batch=args.batch)
      real[name] = r
      print(
          f"  real {name}: {r['calls_per_query']:.2f} calls/query vs naive {r['naive_per_query']} "
          f"({100 * r['fewer']:.1f}% fewer, cache hit rate {100 * r['cache_hit_rate']:.1f}%; "
          f"policy top-{args.k} == reference top-{args.k} on {100 * same:.1f}% of query-epochs)"
      )
    summary += (
        f" | REAL reranker ({os.path.basename(os.path.normpath(args.model))} = {pol['model_desc'].split(' (')[0]}, "
        f"{len(real_ex)} NQ train queries, N={args.real_n}, max_length {args.real_max_length}, k={args.k}, {args.epochs} epochs; reference = eval-mode "
        f"greedy top-{args.k}, fresh dropout key per epoch): "
        + "; ".join(
            f"{name}: {r['calls_per_query']:.2f}/{r['naive_per_query']} calls/query " f"({100 * r['fewer']:.0f}% fewer)"
            for name, r in real.items()
        )
    )
  if args.requests:
    print(
        f"part 2: {args.requests} NQ prefix prompts, max_tokens {args.max_tokens}, llama-cpp-python server "
        f"(SmolLM2-135M Q4_1), parallel slots {PARALLEL_SLOTS}"
    )
    t = throughput(
        examples[: args.requests],
        n_requests=args.requests,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        k=args.k,
        rounds=args.rounds,
    )
    summary += (
        f" | openai backend: {t['conc']:.2f} req/s at concurrency {args.concurrency} vs {t['seq']:.2f} "
        f"one at a time (x{t['ratio']:.2f}; server parallel slots {PARALLEL_SLOTS}, {t['threads']} threads)"
    )
  if args.likelihood:
    lik_ex = load_sample("nq", "train", limit=args.likelihood)
    print(
        f"part 3: {len(lik_ex)} NQ train queries, k={args.k}, reader {args.likelihood_model} in-process, "
        f"max_tokens {args.max_tokens}, no cache; lambda_ll 0 vs 1 alternating per query",
        flush=True,
    )
    lc = likelihood_cost(lik_ex, model=args.likelihood_model, k=args.k, max_tokens=args.max_tokens)
    print(
        f"  reader seconds per episode: {lc['without']:.2f} without the likelihood term, {lc['with']:.2f} with it "
        f"(x{lc['ratio']:.2f}; median per-episode ratio x{lc['ratio_median']:.2f})"
    )
    summary += (
        f" | likelihood term ({args.likelihood_model}, {lc['episodes']} episodes of 2k={2 * args.k} prefixes): "
        f"{lc['with']:.2f} vs {lc['without']:.2f} reader s/episode (x{lc['ratio']:.2f})"
    )
  print("RESULT " + summary)


if __name__ == "__main__":
  main()
