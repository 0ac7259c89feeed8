"""How well the reader's likelihood of the gold answer tracks its answers (issue: rewards that see
what the reader knows), on the NQ sample's `val` questions (or the first --queries training ones).

For each question two top-k orders are shown to the reader, prefix by prefix (t = 1..k), as an RRPO
episode shows them: the "reference" is the BM25 order, the "policy" a Plackett-Luce sample (Gumbel
top-k, tau = --temperature) from the question's z-scored BM25 scores, as a sampling policy explores
around its reference. Every prefix gets the generated answer (EM / F1 / hit) and
q = rewards.likelihood (max over rewards.gold_aliases of exp(mean token log p)), asked together
(Reader.ask: the scores reuse the answer's KV cache) through ScoringStep and a SQLite cache.
Prints, over all prefixes: AUC of q for EM = 1 and for F1 > 0, Spearman(q, F1); over the prefixes
where the two orders' prompts differ: how often q ties, how often F1 differs, and on those the
share where q moves in the same direction as F1; and the share of episodes whose reward ties the
reference's at every step for R = EM + F1 + hit against R + lambda_ll * q.

  python tools/likelihood_signal.py --split=val --cache=runs/signal/reader_cache.sqlite
  python tools/likelihood_signal.py --split=train --queries=150 --cache=runs/signal/reader_cache.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from scipy import stats as scipy_stats
from tqdm import tqdm

from rrpo_jax import config as config_lib
from rrpo_jax.core import rewards
from rrpo_jax.data import splits
from rrpo_jax.reader import ResponseCache, make_reader
from rrpo_jax.train.scoring import ScoringStep, request


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half."""
  pos, neg = scores[labels], scores[~labels]
  if not len(pos) or not len(neg):
    return float("nan")
  ranks = scipy_stats.rankdata(np.concatenate([pos, neg]))
  return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def policy_order(ex, rng: np.random.Generator, *, k: int, temperature: float) -> list[int]:
  s = np.array([c.score or 0.0 for c in ex.candidates], np.float64)
  z = (s - s.mean()) / (s.std() + 1e-8) / temperature
  return [int(i) for i in np.argsort(-(z + rng.gumbel(size=z.shape)), kind="stable")[:k]]


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--split", default="val", help="val (150 questions) or train")
  p.add_argument("--queries", type=int, default=0, help="first N questions of the split (0 = all)")
  p.add_argument("--k", type=int, default=3)
  p.add_argument("--n", type=int, default=12, help="BM25 candidates per question")
  p.add_argument("--temperature", type=float, default=1.0)
  p.add_argument("--model", default="gemma3-270m")
  p.add_argument("--cache", default="runs/signal/reader_cache.sqlite")
  p.add_argument("--lambda_ll", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="", help="write the per-prefix rows and the summary as JSON here")
  a = p.parse_args()

  c = config_lib.get_config()
  c.data.sample, c.data.val_size, c.data.num_candidates = "nq", 150, a.n
  examples = splits.load(c.data, a.split)
  if a.queries:
    examples = examples[: a.queries]
  rng = np.random.default_rng(a.seed)
  reader = make_reader({"backend": "llama_cpp", "model": a.model, "max_tokens": 16})
  os.makedirs(os.path.dirname(os.path.abspath(a.cache)), exist_ok=True)
  step = ScoringStep(reader, ResponseCache(a.cache))
  rows = []
  start = time.perf_counter()
  for ex in tqdm(examples, desc="questions"):
    orders = {
        "reference": list(range(min(a.k, len(ex.candidates)))),
        "policy": policy_order(ex, rng, k=a.k, temperature=a.temperature),
    }
    reqs = [request(ex, order[: t + 1]) for order in orders.values() for t in range(len(order))]
    responses, qs = step.answer_and_likelihood(reqs, [list(ex.answers)] * len(reqs))
    i = 0
    for name, order in orders.items():
      for t in range(len(order)):
        r = responses[i]
        terms = rewards.terms(r.text, list(ex.answers))
        rows.append(
            {
                "qid": ex.qid,
                "system": name,
                "t": t + 1,
                "pids": list(reqs[i].pids),
                "answer": r.text,
                "q": qs[i],
                **terms,
            }
        )
        i += 1
  seconds = time.perf_counter() - start
  q = np.array([r["q"] if r["q"] is not None else np.nan for r in rows])
  ok = ~np.isnan(q)
  em, f1 = np.array([r["em"] for r in rows]), np.array([r["f1"] for r in rows])
  summary = {
      "split": a.split,
      "questions": len(examples),
      "prefixes": len(rows),
      "failed_scores": int((~ok).sum()),
      "auc_q_em": auc(q[ok], em[ok] == 1),
      "auc_q_f1_pos": auc(q[ok], f1[ok] > 0),
      "spearman_q_f1": float(scipy_stats.spearmanr(q[ok], f1[ok]).statistic),
  }
  by = {(r["qid"], r["system"], r["t"]): r for r in rows}
  differ = q_tie = f1_diff = agree = 0
  ties_r = ties_rq = episodes = 0
  for ex in examples:
    ref = [by.get((ex.qid, "reference", t)) for t in range(1, a.k + 1)]
    pol = [by.get((ex.qid, "policy", t)) for t in range(1, a.k + 1)]
    pairs = [(x, y) for x, y in zip(pol, ref) if x is not None and y is not None]
    if not pairs:
      continue
    episodes += 1
    big_r = lambda r: r["em"] + r["f1"] + r["hit"]  # noqa: E731
    ties_r += all(big_r(x) == big_r(y) for x, y in pairs)
    ties_rq += all(big_r(x) + a.lambda_ll * (x["q"] or 0) == big_r(y) + a.lambda_ll * (y["q"] or 0) for x, y in pairs)
    for x, y in pairs:
      if x["pids"] == y["pids"] or x["q"] is None or y["q"] is None:
        continue
      differ += 1
      q_tie += x["q"] == y["q"]
      if x["f1"] != y["f1"]:
        f1_diff += 1
        agree += np.sign(x["q"] - y["q"]) == np.sign(x["f1"] - y["f1"])
  summary.update(
      {
          "differing_prefixes": differ,
          "q_ties_where_prompts_differ": q_tie,
          "f1_differs": f1_diff,
          "q_sign_agrees_with_f1": agree / f1_diff if f1_diff else float("nan"),
          "episodes": episodes,
          "episodes_tied_R": ties_r / episodes if episodes else float("nan"),
          "episodes_tied_R_plus_lambda_q": ties_rq / episodes if episodes else float("nan"),
          "lambda_ll": a.lambda_ll,
          "seconds": seconds,
          "reader": reader.identity,
          **{f"reader_{k}": v for k, v in step.run_stats(evaluation=True).items()},
      }
  )
  reader.close()
  if a.out:
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
      json.dump({"summary": summary, "rows": rows}, f, indent=1)
  for key, value in summary.items():
    print(f"{key:>32}: {value}")


if __name__ == "__main__":
  main()
