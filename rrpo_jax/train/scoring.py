"""The reader scoring step: selections -> prefix prompts -> cached, deduplicated reader calls -> rewards.

For each query b and step t = 1..k the reader answers from the first t picks:
  r[b, t] = R(A_b, Reader(q_b, d_{a_1}..d_{a_t}))   (policy actions a)
  V[b, t] = R(A_b, Reader(q_b, d_{g_1}..d_{g_t}))   (reference greedy top-k g; computed once per query)
with R = EM + lambda_f * F1 + lambda_h * hit + lambda_ll * q (rrpo_jax.core.rewards: the weighted sum of
its registered terms; q and any other reader term only when its weight is not 0: then the reader
also scores the gold aliases teacher-forced after each prefix's prompt, Reader.ask). Slots at or
after the first -1 in a row are invalid: no request, 0 in every output. Identical requests in a
batch are sent once, cached ones (answers and scores alike) not at all; the rest go to the reader in
one batch, each query's prefixes adjacent and in order (t = 1..k) so a reader that keeps its KV
cache reuses the shared beginning.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from rrpo_jax.train import faults
from rrpo_jax.core import rewards as rewards_lib
from rrpo_jax.core import sharding
from rrpo_jax.reader import Passage, Request, Response, Scored, cache_key, response_as_score, score_as_response, score_key

COUNTERS = (
    "queries",
    "prefixes",
    "unique_requests",
    "value_memo_hits",
    "cache_hits",
    "cache_misses",
    "reader_calls",
    "failed",
    "malformed",
    "failed_queries",
    "truncated",  # passages cut to fit the reader's context (Response.truncated), in fresh reader calls
    "prompt_tokens",
    "completion_tokens",
    "reader_seconds",
    "score_requests",  # unique teacher-forced scores wanted (reader terms, likelihood labels and columns)
    "score_cache_hits",
    "score_calls",  # scores computed by the reader (not cached)
    "score_failed",
)


@dataclasses.dataclass(frozen=True)
class ScoreResult:
  """rewards / values float32[B, k]; terms: reward_<term>, value_<term> float32[B, k] for every
  registered reward term (em, f1, hit);
  stats: this step's accounting; answers: the policy's post-processed answers per valid slot;
  ok bool[B]: every reader response of the query (policy and reference prefixes) succeeded and was
  well-formed. A query with ok=False carries no learning signal (its 0 rewards stand for a failure,
  not for a wrong answer): the trainer masks it out of the update."""

  rewards: np.ndarray
  values: np.ndarray
  terms: dict[str, np.ndarray]
  stats: dict[str, float]
  answers: list[list[str]] = dataclasses.field(default_factory=list)
  ok: np.ndarray | None = None


def all_hosts_stats(stats: dict[str, float]) -> dict[str, float]:
  """ScoreResult.stats of one step over every process: each counter summed over the processes,
  the rates derived again from the sums. A collective (sharding.all_hosts_rows): every process
  calls it with its own stats (on one process: these stats, the rates derived again)."""
  row = np.array([stats[name] for name in COUNTERS], np.float64)[None]  # float64[1, len(COUNTERS)]
  total = np.asarray(sharding.all_hosts_rows(row), np.float64).reshape(-1, len(COUNTERS)).sum(axis=0)
  return _derived(collections.Counter(dict(zip(COUNTERS, total.tolist()))))


def _derived(counts: collections.Counter) -> dict[str, float]:
  stats = {name: float(counts.get(name, 0)) for name in COUNTERS}
  looked_up = stats["cache_hits"] + stats["cache_misses"]
  stats["cache_hit_rate"] = stats["cache_hits"] / looked_up if looked_up else 0.0
  stats["reader_calls_per_query"] = stats["reader_calls"] / stats["queries"] if stats["queries"] else 0.0
  stats["saved_frac"] = 1.0 - stats["reader_calls"] / stats["prefixes"] if stats["prefixes"] else 0.0
  return stats


def _asks(name: str, answers) -> list[str]:
  """The continuations the reader term `name` has the reader score for `answers`."""
  asks = rewards_lib.TERMS.get(name).asks
  assert asks is not None  # reader terms (rewards.reader_terms) are the terms registered with asks=
  return asks(list(answers))


def _valid_prefix(row: np.ndarray, n: int, where: str) -> list[int]:
  picks = []
  for a in row:
    a = int(a)
    if a < 0:
      break
    if a >= n or a in picks:
      raise ValueError(f"{where}: candidate index {a} is out of range [0, {n}) or repeated in {row.tolist()}")
    picks.append(a)
  return picks


def request(example, picks: Sequence[int]) -> Request:
  """The reader request for `example` with its candidates `picks`, in that order."""
  passages = tuple(Passage(str(c.pid), c.title or "", c.text) for c in (example.candidates[i] for i in picks))
  return Request(str(example.qid), example.question, passages)


class ScoringStep:
  """Turns reference top-k and policy actions into rewards and values with a reader and a cache.

  reader: a rrpo_jax.reader.Reader; cache: a ResponseCache or None. Examples need .qid, .question,
  .answers and .candidates (each .pid, .title, .text); None marks a padding query. ReaderError /
  ReaderUnavailableError from the reader propagate: the caller stops cleanly.
  """

  def __init__(
      self, reader, cache=None, *, lambda_f: float = 1.0, lambda_h: float = 1.0, weights: dict[str, float] | None = None
  ):
    """weights: {term: weight} (rewards.weights(config.reward)); default: from lambda_f / lambda_h."""
    self.reader, self.cache = reader, cache
    self.weights = (
        dict(weights) if weights is not None else rewards_lib.weights({"lambda_f": lambda_f, "lambda_h": lambda_h})
    )
    # Answer terms always; reader terms only when weighted (weight 0: no scoring calls, not logged).
    self.reader_terms = rewards_lib.reader_terms(self.weights)
    self.term_names = rewards_lib.answer_terms() + self.reader_terms
    self.totals: collections.Counter = collections.Counter()  # score() calls
    self.eval_totals: collections.Counter = collections.Counter()  # answer() calls (evaluation)
    self._values: dict[Any, np.ndarray] = {}  # (qid, question, ref pids, k) -> float32[1 + terms, k] (R, terms)
    self._prefix = (reader.identity, reader.template.hash)

  def run_stats(self, *, evaluation: bool = False) -> dict[str, float]:
    """Accounting since construction (of score(), or of answer()): calls, tokens, hit rate, seconds."""
    return _derived(self.eval_totals if evaluation else self.totals)

  def _request(self, ex, picks: Sequence[int]) -> Request:
    return request(ex, picks)

  def _key(self, request: Request) -> str:
    return cache_key(*self._prefix, request)

  def _answer(self, wanted: dict[str, Request], counts: collections.Counter, use: str) -> dict[str, Response]:
    """Responses for every wanted key: the cache first, then one reader batch in insertion order.
    use: "rrpo" (training rewards) or "eval" (answers), the name of its fault points (faults.py)."""
    return self._ask(wanted, {}, counts, use)[0]

  def _ask(
      self, wanted: dict[str, Request], scores: dict[str, tuple[Request, str]], counts: collections.Counter, use: str
  ) -> tuple[dict[str, Response], dict[str, Scored]]:
    """Answers for every key of `wanted` and teacher-forced scores for every key of `scores`
    ({score key: (request, continuation)}): the cache first, then one reader.ask batch, in insertion
    order (a request's answer and its scores together, so llama.cpp reuses the prompt's KV cache)."""
    faults.point(f"{use}.reader.before")
    counts["unique_requests"] += len(wanted)
    counts["score_requests"] += len(scores)
    got = self.cache.get_many(wanted) if self.cache is not None else {}
    # Post-processing is not part of the key: re-apply the current one to the cached raw output.
    got = {k: dataclasses.replace(r, text=self.reader.clean(r.raw)) for k, r in got.items()}
    counts["cache_hits"] += len(got)
    counts["cache_misses"] += len(wanted) - len(got) if self.cache is not None else 0
    held = self.cache.get_many(scores) if self.cache is not None and scores else {}
    scored = {k: response_as_score(r) for k, r in held.items()}
    counts["score_cache_hits"] += len(scored)
    pending = [(k, r) for k, r in wanted.items() if k not in got]
    pending_scores = [(k, rc) for k, rc in scores.items() if k not in scored]
    if pending or pending_scores:
      # One entry per distinct prompt: (request, answer key or None, [(score key, continuation)])
      asks: dict[Any, tuple[Request, str | None, list[tuple[str, str]]]] = {}
      for k, r in pending:
        asks[self._key(r)] = (r, k, [])
      for k, (r, cont) in pending_scores:
        entry = asks.setdefault(self._key(r), (r, None, []))
        entry[2].append((k, cont))
      entries = list(asks.values())
      start = time.perf_counter()
      responses, scores_out = self.reader.ask(
          [e[0] for e in entries],
          answer=[e[1] is not None for e in entries],
          continuations=[[c for _, c in e[2]] for e in entries],
      )
      # typeshed types a Counter's values as int; this one also sums the reader's seconds.
      counts["reader_seconds"] += time.perf_counter() - start  # type: ignore[assignment]
      counts["reader_calls"] += len(pending)
      counts["score_calls"] += len(pending_scores)
      for (req, akey, conts), resp, outs in zip(entries, responses, scores_out):
        if akey is not None:
          got[akey] = resp
          counts["failed"] += not resp.ok
          counts["malformed"] += resp.malformed
          counts["truncated"] += resp.truncated
          counts["prompt_tokens"] += resp.prompt_tokens
          counts["completion_tokens"] += resp.completion_tokens
        for (skey, _), out in zip(conts, outs):
          scored[skey] = out
          counts["score_failed"] += not out.ok
      faults.point(f"{use}.reader.during")
      if self.cache is not None:
        identity = self._prefix[0]
        # Score what the cache keeps (the first answer stored under a key, perhaps another host's),
        # so every host computes the same reward for a prefix whichever host asked first.
        kept = self.cache.store(
            {k: (r, identity, got[k]) for k, r in pending}
            | {k: (rc[0], identity, score_as_response(rc[1], scored[k])) for k, rc in pending_scores}
        )
        got.update({k: dataclasses.replace(r, text=self.reader.clean(r.raw)) for k, r in kept.items() if k in wanted})
        scored.update({k: response_as_score(r) for k, r in kept.items() if k in scores})
    faults.point(f"{use}.reader.after")
    return got, scored

  def _reward(self, ex, text: str, means: dict[str, list[float]] | None = None) -> list[float]:
    """[R, term_1, ..., term_T] of one answer; means: {reader term: its continuations' mean log p}."""
    values = rewards_lib.terms(text, list(ex.answers))
    for name in self.reader_terms:
      values[name] = rewards_lib.reader_term(name, (means or {}).get(name, []), list(ex.answers))
    return [rewards_lib.total(values, self.weights)] + [values[name] for name in self.term_names]

  def _means(self, keys: dict[str, list[str]], scored: dict[str, Scored]) -> dict[str, list[float]]:
    return {name: [scored[k].mean_logprob for k in ks] for name, ks in keys.items()}

  def score(self, examples: Sequence[Any], ref_topk, actions) -> ScoreResult:
    """r[B, k] on the policy prefixes, V[B, k] on the reference prefixes, per-term arrays, stats."""
    ref_topk, actions = np.asarray(ref_topk), np.asarray(actions)
    b, k = actions.shape
    if ref_topk.shape != (b, k) or len(examples) != b:
      raise ValueError(f"examples ({len(examples)}), ref_topk {ref_topk.shape} and actions {actions.shape} disagree")
    counts: collections.Counter[str] = collections.Counter()
    wanted: dict[str, Request] = {}
    ref_keys, pol_keys, memo, mkeys = {}, {}, {}, {}
    skeys: dict[tuple, dict[str, list[str]]] = {}  # (side, i, t) -> {reader term: score keys}
    score_wanted: dict[str, tuple[Request, str]] = {}

    def ask_scores(side, i, t, ex, req):  # {reader term: score keys} of one prefix, and what to score
      keys: dict[str, list[str]] = {}
      for name in self.reader_terms:
        keys[name] = []
        for cont in _asks(name, ex.answers):
          key = score_key(*self._prefix, req, cont)
          keys[name].append(key)
          score_wanted.setdefault(key, (req, cont))
      if keys:
        skeys[side, i, t] = keys

    for i, ex in enumerate(examples):
      if ex is None:
        continue
      counts["queries"] += 1
      n = len(ex.candidates)
      ref = _valid_prefix(ref_topk[i], n, f"ref_topk[{i}] (qid {ex.qid})")
      pol = _valid_prefix(actions[i], n, f"actions[{i}] (qid {ex.qid})")
      counts["prefixes"] += len(ref) + len(pol)
      mkey = (str(ex.qid), ex.question, tuple(str(ex.candidates[j].pid) for j in ref), k)
      mkeys[i] = mkey
      if mkey in self._values:
        memo[i] = self._values[mkey]
        counts["value_memo_hits"] += 1
      else:
        for t in range(len(ref)):
          req = self._request(ex, ref[: t + 1])
          ref_keys[i, t] = key = self._key(req)
          wanted.setdefault(key, req)
          ask_scores("ref", i, t, ex, req)
      for t in range(len(pol)):
        req = self._request(ex, pol[: t + 1])
        pol_keys[i, t] = key = self._key(req)
        wanted.setdefault(key, req)
        ask_scores("pol", i, t, ex, req)
    got, scored = self._ask(wanted, score_wanted, counts, "rrpo")

    out = np.zeros((2, 1 + len(self.term_names), b, k), np.float32)  # (policy, reference) x (R, terms)
    answers: list[list[str]] = [[] for _ in range(b)]
    usable = np.array([ex is not None for ex in examples], bool)
    ok_scores = {
        (side, i, t): all(scored[k].ok for ks in keys.values() for k in ks) for (side, i, t), keys in skeys.items()
    }
    for (i, t), key in list(pol_keys.items()):
      usable[i] &= got[key].ok and not got[key].malformed and ok_scores.get(("pol", i, t), True)
    for (i, t), key in list(ref_keys.items()):
      usable[i] &= got[key].ok and not got[key].malformed and ok_scores.get(("ref", i, t), True)
    counts["failed_queries"] += int(sum(ex is not None for ex in examples) - usable.sum())
    for (i, t), key in pol_keys.items():
      out[0, :, i, t] = self._reward(examples[i], got[key].text, self._means(skeys.get(("pol", i, t), {}), scored))
      answers[i].append(got[key].text)
    fresh: dict[int, bool] = {}
    for (i, t), key in ref_keys.items():
      out[1, :, i, t] = self._reward(examples[i], got[key].text, self._means(skeys.get(("ref", i, t), {}), scored))
      fresh[i] = fresh.get(i, True) and got[key].ok and not got[key].malformed and ok_scores.get(("ref", i, t), True)
    for i, values in memo.items():
      out[1, :, i, :] = values
    for i, ok in fresh.items():
      if ok:  # failures are retried next time, never remembered
        self._values[mkeys[i]] = out[1, :, i, :].copy()
    self.totals.update(counts)
    terms = {
        f"{side}_{name}": out[s, j + 1]
        for s, side in enumerate(("reward", "value"))
        for j, name in enumerate(self.term_names)
    }
    return ScoreResult(out[0, 0], out[1, 0], terms, _derived(counts), answers, usable)

  def answer(self, requests: Sequence[Request]) -> list[Response]:
    """Responses for arbitrary requests through the same dedup + cache (counted in eval totals)."""
    return self.answer_and_likelihood(requests)[0]

  def answer_and_likelihood(
      self, requests: Sequence[Request], answers: Sequence[Sequence[str]] | None = None, *, generate: bool = True
  ) -> tuple[list[Response], list[float | None]]:
    """Responses (generate=True; else []) and, with the gold `answers` of each request, the
    likelihood term q of each request (rewards.likelihood over rewards.gold_aliases; None where a
    score failed), through the same dedup + cache, counted in eval totals. The evaluation's q
    column and the reader-preference warm-up labels (one passage a request) come from here."""
    counts = collections.Counter(queries=len({r.qid for r in requests}), prefixes=len(requests))
    keys = [self._key(r) for r in requests]
    wanted = dict(zip(keys, requests)) if generate else {}
    conts = [rewards_lib.gold_aliases(a) for a in answers] if answers is not None else [[] for _ in requests]
    skeys = [[score_key(*self._prefix, r, c) for c in cs] for r, cs in zip(requests, conts)]
    score_wanted = {k: (r, c) for r, ks, cs in zip(requests, skeys, conts) for k, c in zip(ks, cs)}
    got, scored = self._ask(wanted, score_wanted, counts, "eval")
    self.eval_totals.update(counts)
    qs: list[float | None] = []
    if answers is not None:
      for ks in skeys:
        outs = [scored[k] for k in ks]
        qs.append(rewards_lib.likelihood([o.mean_logprob for o in outs]) if all(o.ok for o in outs) else None)
    return ([got[k] for k in keys] if generate else []), qs
