"""Evaluation: the reader's EM / F1 with each system's top-k, and IR metrics from has_answer labels.

Systems are candidate orders: "retriever" (the input order), "reference" (the frozen initial
reranker), "policy" (the current reranker). For each, over the evaluation queries:
  em, f1     reader answer from the top-k passages vs the gold answers (SQuAD normalised, x100);
  hit        share of answers that contain a gold answer (x100);
  recall     Recall@k over has_answer labels (rax.recall_metric, x100);
  answer_recall  share of queries with a has_answer passage in the top-k (DPR "top-k accuracy", x100);
  ndcg, mrr  nDCG@k and MRR over has_answer (rax, x100).
Outputs: results JSON, the policy's ranking as DPR JSONL and TREC run files, a printed table.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import rax

from rrpo_jax import rewards, scoring
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
    rows.append({"qid": ex.qid, "answer": r.text, "em": rewards.exact_match(r.text, ex.answers),
                 "f1": rewards.f1(r.text, ex.answers), "hit": rewards.hit(r.text, ex.answers)})
  mean = lambda key: 100 * float(np.mean([row[key] for row in rows])) if rows else float("nan")  # noqa: E731
  return {"em": mean("em"), "f1": mean("f1"), "hit": mean("hit")}, rows


def paired_t(a: Sequence[float], b: Sequence[float]) -> float:
  """Paired t statistic of mean(a - b) (nan when undefined)."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if d.size < 2 or d.std(ddof=1) == 0:
    return float("nan")
  return float(d.mean() / (d.std(ddof=1) / math.sqrt(d.size)))


def evaluate(examples, orders: Mapping[str, Sequence[Sequence[int]]], *,
             answer_fn: Callable[[list[Request]], list[Response]], k: int,
             scores: Mapping[str, Sequence[np.ndarray]] | None = None) -> dict:
  """Evaluates each system's candidate orders; returns {"systems": {name: metrics}, "per_query": ...}.

  orders[name][q] lists candidate indices of examples[q], best first (valid candidates only).
  answer_fn answers a batch of reader requests (cached, deduplicated by the caller).
  """
  n = max((len(ex.candidates) for ex in examples), default=0)
  labels = np.zeros((len(examples), n), bool)
  where = np.zeros((len(examples), n), bool)
  for q, ex in enumerate(examples):
    where[q, :len(ex.candidates)] = True
    labels[q, :len(ex.candidates)] = [bool(c.has_answer) for c in ex.candidates]
  systems, per_query = {}, {}
  requests = {name: [scoring.request(ex, order[:k]) for ex, order in zip(examples, orders[name])]
              for name in orders}
  flat = [r for name in orders for r in requests[name]]
  answers = answer_fn(flat)
  pos = 0
  for name in orders:
    resp = answers[pos:pos + len(examples)]
    pos += len(examples)
    rm, rows = reader_metrics(examples, resp)
    s = np.stack([order_scores(o, n) for o in orders[name]]) if examples else np.zeros((0, n), np.float32)
    systems[name] = {**rm, **ir_metrics(s, labels, where, k=k), "queries": len(examples)}
    for row, order in zip(rows, orders[name]):
      row["order"] = list(map(int, order[:k]))
    per_query[name] = rows
  out = {"k": k, "systems": systems, "per_query": per_query}
  if "policy" in per_query and "reference" in per_query:
    out["policy_vs_reference_f1_t"] = paired_t([r["f1"] for r in per_query["policy"]],
                                               [r["f1"] for r in per_query["reference"]])
  return out


def flat_metrics(results: dict) -> dict[str, float]:
  """{"<system>_<metric>": value} for logging and best-checkpoint selection."""
  return {f"{name}_{m}": v for name, ms in results["systems"].items() for m, v in ms.items() if m in METRICS}


def table(results: dict, *, title: str = "") -> str:
  """The evaluation table as text."""
  head = f"{'system':<12}" + "".join(f"{m:>14}" for m in METRICS)
  lines = [title] if title else []
  lines += [head, "-" * len(head)]
  for name, ms in results["systems"].items():
    lines.append(f"{name:<12}" + "".join(f"{ms[m]:>14.2f}" for m in METRICS))
  lines.append(f"(reader EM/F1/hit and IR metrics x100; k={results['k']}; "
               f"{next(iter(results['systems'].values()))['queries'] if results['systems'] else 0} queries; "
               "recall/ndcg/mrr over has_answer labels)")
  return "\n".join(lines)


def write_outputs(directory: str, examples, results: dict, *, orders: Mapping[str, Sequence[Sequence[int]]],
                  scores: Mapping[str, Sequence[np.ndarray]] | None = None, step: int = 0, write_runs: bool = True):
  """results.json, and for each reranker system a DPR JSONL ranking and a TREC run file."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"step": step, **results}, f, indent=1)
  if not write_runs:
    return
  for name, system_orders in orders.items():
    sys_scores = (scores or {}).get(name)
    with open(os.path.join(directory, f"{name}.dpr.jsonl"), "w", encoding="utf-8") as dpr, \
         open(os.path.join(directory, f"{name}.trec"), "w", encoding="utf-8") as trec:
      for q, (ex, order) in enumerate(zip(examples, system_orders)):
        ctxs = []
        for rank, i in enumerate(order):
          c = ex.candidates[i]
          score = float(sys_scores[q][i]) if sys_scores is not None else float(len(order) - rank)
          ctxs.append({"id": c.pid, "title": c.title, "text": c.text, "score": score, "has_answer": bool(c.has_answer)})
          trec.write(f"{ex.qid} Q0 {c.pid} {rank + 1} {score:.6f} rrpo_jax-{name}\n")
        dpr.write(json.dumps({"id": ex.qid, "question": ex.question, "answers": list(ex.answers), "ctxs": ctxs},
                             ensure_ascii=False) + "\n")
