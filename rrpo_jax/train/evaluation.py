"""Evaluation: the reader's EM / F1 with each system's top-k, and IR metrics from has_answer labels.

Systems are candidate orders: "retriever" (the input order), "reference" (the frozen initial
reranker), "policy" (the current reranker). For each, over the evaluation queries:
  em, f1     reader answer from the top-k passages vs the gold answers (SQuAD normalised, x100);
  hit        share of answers that contain a gold answer (x100);
  recall     Recall@k over has_answer labels (rax.recall_metric, x100);
  answer_recall  share of queries with a has_answer passage in the top-k (DPR "top-k accuracy", x100);
  ndcg, mrr  nDCG@k and MRR over has_answer (rax, x100);
  q          with eval.likelihood: the reader's likelihood of the gold answer given the top-k
             (rewards.likelihood, x100), the dense signal the likelihood reward uses.
Paired comparisons (policy - reference, policy - retriever, reference - retriever) of EM and F1 over
the same questions come with a 95% paired-bootstrap interval, a paired t-test and the minimum
detectable effect at 80% power, mde80 (stats.py).
Outputs: results JSON, the policy's ranking as DPR JSONL and TREC run files, a printed table.
"""

from __future__ import annotations

import json
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import rax

from rrpo_jax import paths
from rrpo_jax.core import rewards
from rrpo_jax.train import scoring
from rrpo_jax.core import stats
from rrpo_jax.reader import Request, Response

METRICS = ("em", "f1", "hit", "recall", "answer_recall", "ndcg", "mrr")


def order_scores(order: Sequence[int], n: int) -> np.ndarray:
  """Scores that reproduce a ranking: the first candidate gets n, the next n-1, ...; unranked -inf."""
  s = np.full((n,), -np.inf, np.float32)
  for rank, i in enumerate(order):
    s[i] = n - rank
  return s


def ir_metrics(scores: np.ndarray, labels: np.ndarray, where: np.ndarray, *, k: int) -> dict[str, float]:
  """Recall@k, answer recall@k, nDCG@k, MRR (x100) over queries; scores/labels/where [Q, N]."""
  scores = np.where(where, scores, -1e9).astype(np.float32)
  labels = (labels & where).astype(np.float32)
  q = scores.shape[0]
  if q == 0:
    return {m: float("nan") for m in ("recall", "answer_recall", "ndcg", "mrr")}
  top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
  hit_any = np.take_along_axis(labels, top, axis=-1).max(axis=-1)
  return {
      "recall": 100 * float(rax.recall_metric(scores, labels, where=where, topn=k)),
      "answer_recall": 100 * float(hit_any.mean()),
      "ndcg": 100 * float(rax.ndcg_metric(scores, labels, where=where, topn=k)),
      "mrr": 100 * float(rax.mrr_metric(scores, labels, where=where)),
  }


def reader_metrics(examples, responses: Sequence[Response]) -> tuple[dict[str, float], list[dict]]:
  """Mean EM / F1 / hit (x100) and per-query rows."""
  rows = []
  for ex, r in zip(examples, responses):
    rows.append(
        {
            "qid": ex.qid,
            "answer": r.text,
            "em": rewards.exact_match(r.text, ex.answers),
            "f1": rewards.f1(r.text, ex.answers),
            "hit": rewards.hit(r.text, ex.answers),
        }
    )
  mean = lambda key: 100 * float(np.mean([row[key] for row in rows])) if rows else float("nan")  # noqa: E731
  return {"em": mean("em"), "f1": mean("f1"), "hit": mean("hit")}, rows


def evaluate(
    examples,
    orders: Mapping[str, Sequence[Sequence[int]]],
    *,
    answer_fn: Callable[[list[Request]], list[Response]],
    k: int,
    scores: Mapping[str, Sequence[np.ndarray]] | None = None,
    oracle: bool = False,
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
    likelihood_fn: Callable[[list[Request], list[list[str]]], list[float | None]] | None = None,
) -> dict:
  """Evaluates each system's candidate orders; returns {"systems": {name: metrics}, "per_query": ...,
  "comparisons": {"a-b": {"em": {...}, "f1": {...}}}} (stats.compare for each pair in stats.PAIRS
  that was evaluated: paired bootstrap interval and paired t-test over the questions).

  orders[name][q] lists candidate indices of examples[q], best first (valid candidates only).
  answer_fn answers a batch of reader requests (cached, deduplicated by the caller).
  oracle=True adds the system "oracle@1": per question the reader's best EM / F1 / hit over its
  candidates shown one at a time (N reader calls a question): the reachable ceiling of a first pick.
  likelihood_fn(requests, gold answers) -> q per request (None: failed) adds the metric "q" (x100;
  the mean over the questions whose score did not fail) and its paired comparisons.
  """
  n = max((len(ex.candidates) for ex in examples), default=0)
  labels = np.zeros((len(examples), n), bool)
  where = np.zeros((len(examples), n), bool)
  for q, ex in enumerate(examples):
    where[q, : len(ex.candidates)] = True
    labels[q, : len(ex.candidates)] = [bool(c.has_answer) for c in ex.candidates]
  systems, per_query = {}, {}
  requests = {name: [scoring.request(ex, order[:k]) for ex, order in zip(examples, orders[name])] for name in orders}
  flat = [r for name in orders for r in requests[name]]
  answers = answer_fn(flat)
  qs = likelihood_fn(flat, [list(ex.answers) for _ in orders for ex in examples]) if likelihood_fn else None
  pos = 0
  for name in orders:
    resp = answers[pos : pos + len(examples)]
    rm, rows = reader_metrics(examples, resp)
    if qs is not None:
      for row, q_value in zip(rows, qs[pos : pos + len(examples)]):
        row["q"] = float("nan") if q_value is None else float(q_value)
      rm["q"] = 100 * float(np.nanmean([row["q"] for row in rows])) if rows else float("nan")
    pos += len(examples)
    s = np.stack([order_scores(o, n) for o in orders[name]]) if examples else np.zeros((0, n), np.float32)
    systems[name] = {**rm, **ir_metrics(s, labels, where, k=k), "queries": len(examples)}
    for row, order in zip(rows, orders[name]):
      row["order"] = list(map(int, order[:k]))
    per_query[name] = rows
  if oracle:
    systems[ORACLE], per_query[ORACLE] = _oracle(examples, answer_fn)
  metrics = ("em", "f1") + (("q",) if qs is not None else ())
  comparisons = {
      f"{a}-{b}": stats.compare_rows(per_query[a], per_query[b], metrics=metrics, resamples=resamples, seed=seed)
      for a, b in stats.PAIRS
      if a in per_query and b in per_query
  }
  return {"k": k, "systems": systems, "per_query": per_query, "comparisons": comparisons, "resamples": resamples}


ORACLE = "oracle@1"


def _oracle(examples, answer_fn) -> tuple[dict, list[dict]]:
  """Best single-candidate reader scores per question (k = 1 for every candidate)."""
  requests = [scoring.request(ex, [i]) for ex in examples for i in range(len(ex.candidates))]
  answers = iter(answer_fn(requests))
  rows = []
  for ex in examples:
    best = {"qid": ex.qid, "answer": "", "em": 0.0, "f1": 0.0, "hit": 0.0, "order": []}
    for i in range(len(ex.candidates)):
      text = next(answers).text
      row = {
          "em": rewards.exact_match(text, ex.answers),
          "f1": rewards.f1(text, ex.answers),
          "hit": rewards.hit(text, ex.answers),
      }
      if (row["f1"], row["em"], row["hit"]) > (best["f1"], best["em"], best["hit"]):
        best = {"qid": ex.qid, "answer": text, **row, "order": [i]}
    rows.append(best)
  mean = lambda key: 100 * float(np.mean([row[key] for row in rows])) if rows else float("nan")  # noqa: E731
  nan = float("nan")
  metrics = {
      "em": mean("em"),
      "f1": mean("f1"),
      "hit": mean("hit"),
      "recall": nan,
      "answer_recall": nan,
      "ndcg": nan,
      "mrr": nan,
      "queries": len(examples),
  }
  return metrics, rows


def flat_metrics(results: dict) -> dict[str, float]:
  """{"<system>_<metric>": value} for logging and best-checkpoint selection, plus
  "<a>-<b>_<metric>_diff" / "_lo" / "_hi" / "_p" / "_mde80" of every paired comparison."""
  out = {f"{name}_{m}": v for name, ms in results["systems"].items() for m, v in ms.items() if m in METRICS + ("q",)}
  for pair, by_metric in results.get("comparisons", {}).items():
    for m, c in by_metric.items():
      if m != "questions":
        out.update(
            {
                f"{pair}_{m}_diff": c["diff"],
                f"{pair}_{m}_lo": c["ci95"][0],
                f"{pair}_{m}_hi": c["ci95"][1],
                f"{pair}_{m}_p": c["p"],
            }
        )
        if "mde80" in c:
          out[f"{pair}_{m}_mde80"] = c["mde80"]
  return out


def comparison_lines(comparisons: Mapping[str, Mapping], *, resamples: int = stats.RESAMPLES) -> list[str]:
  """One line per pair: EM and F1 differences with 95% intervals and p, and a plain verdict."""
  if not comparisons:
    return []
  lines = [
      f"paired differences over the same questions (x100; 95% paired-bootstrap interval, "
      f"{resamples:,} resamples; paired t-test p; mde: minimum detectable effect at 80% power):"
  ]
  for pair, c in comparisons.items():
    verdict = []
    for m in ("em", "f1"):
      if m in c:
        verdict.append(f"{m.upper()} {stats.verdict(c[m])}")
    differ = c["f1"]["differ"] if "f1" in c else float("nan")
    q = f"   q {stats.describe(c['q'])}" if "q" in c else ""
    lines.append(
        f"  {pair.replace('-', ' - '):<22} EM {stats.describe(c['em'])}   F1 {stats.describe(c['f1'])}{q}"
        f"   ({', '.join(verdict)}; F1 differs on {100 * differ:.0f}% of questions)"
    )
  return lines


def table(results: dict, *, title: str = "") -> str:
  """The evaluation table as text."""
  columns = METRICS + (("q",) if any("q" in ms for ms in results["systems"].values()) else ())
  head = f"{'system':<12}" + "".join(f"{m:>14}" for m in columns)
  lines = [title] if title else []
  lines += [head, "-" * len(head)]
  for name, ms in results["systems"].items():
    lines.append(f"{name:<12}" + "".join(f"{ms.get(m, float('nan')):>14.2f}" for m in columns))
  split = f"split {results['split']}; " if results.get("split") else ""
  lines.append(
      f"(reader EM/F1/hit and IR metrics x100; k={results['k']}; {split}"
      f"{next(iter(results['systems'].values()))['queries'] if results['systems'] else 0} queries; "
      "recall/ndcg/mrr over has_answer labels)"
  )
  lines += comparison_lines(results.get("comparisons", {}), resamples=results.get("resamples", stats.RESAMPLES))
  return "\n".join(lines)


def write_outputs(
    directory: str,
    examples,
    results: dict,
    *,
    orders: Mapping[str, Sequence[Sequence[int]]],
    scores: Mapping[str, Sequence[np.ndarray]] | None = None,
    step: int = 0,
    write_runs: bool = True,
):
  """results.json, and for each reranker system a DPR JSONL ranking and a TREC run file."""
  paths.makedirs(directory)
  paths.write_text(paths.join(directory, "results.json"), json.dumps({"step": step, **results}, indent=1))
  if not write_runs:
    return
  for name, system_orders in orders.items():
    sys_scores = (scores or {}).get(name)
    with (
        paths.open_(paths.join(directory, f"{name}.dpr.jsonl"), "w") as dpr,
        paths.open_(paths.join(directory, f"{name}.trec"), "w") as trec,
    ):
      for q, (ex, order) in enumerate(zip(examples, system_orders)):
        ctxs = []
        for rank, i in enumerate(order):
          c = ex.candidates[i]
          score = float(sys_scores[q][i]) if sys_scores is not None else float(len(order) - rank)
          ctxs.append({"id": c.pid, "title": c.title, "text": c.text, "score": score, "has_answer": bool(c.has_answer)})
          trec.write(f"{ex.qid} Q0 {c.pid} {rank + 1} {score:.6f} rrpo_jax-{name}\n")
        dpr.write(
            json.dumps(
                {"id": ex.qid, "question": ex.question, "answers": list(ex.answers), "ctxs": ctxs}, ensure_ascii=False
            )
            + "\n"
        )
