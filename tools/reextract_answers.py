"""What the answer extraction (rrpo_jax.reader.prompts.postprocess: leading passage markers and echoed
scaffolding stripped) changes on evaluated runs: it is applied again to the answers stored in each
results file's per-question rows and EM / F1 are recomputed against the gold answers of the bundled
sample. The stored answers are already the first line of the raw output, so an echoed "Question:"
line becomes the empty answer here (a rerun through the reader cache, whose raw outputs are kept,
would find the answer on a later line): the F1 changes below are a lower bound for that case.

  python tools/reextract_answers.py results/nq/rrpo_s0.json results/nq/rrpo_s0_val_step32.json ...
  python tools/reextract_answers.py          # every results file under results/
"""

from __future__ import annotations

import glob
import json
import sys

import numpy as np

from rrpo_jax import config as config_lib
from rrpo_jax.core import rewards
from rrpo_jax.data import splits
from rrpo_jax.reader.prompts import postprocess


def gold_answers(sample: str) -> dict[str, list[str]]:
  c = config_lib.get_config()
  c.data.sample = sample
  c.data.max_eval_queries = 0
  out = {}
  for split in ("train", "dev") + (("test",) if sample == "nq" else ()):
    c.data.eval_split = split
    for ex in splits.load(c.data, split):
      out[str(ex.qid)] = list(ex.answers)
  return out


def main(files: list[str]) -> None:
  files = files or sorted(glob.glob("results/*/*.json"))
  gold = {}
  print(f"{'file':<44}{'system':<11}{'n':>5}{'changed':>9}{'EM old':>8}{'EM new':>8}{'F1 old':>8}{'F1 new':>8}")
  for path in files:
    data = json.load(open(path, encoding="utf-8"))
    per_query = data.get("per_query")
    if not isinstance(per_query, dict):
      continue
    sample = "hotpotqa" if "hotpotqa" in path else "nq"
    if sample not in gold:
      gold[sample] = gold_answers(sample)
    for system, rows in per_query.items():
      rows = [r for r in rows if "answer" in r and str(r["qid"]) in gold[sample]]
      if not rows:
        continue
      new = [postprocess(r["answer"]) for r in rows]
      answers = [gold[sample][str(r["qid"])] for r in rows]
      em_old = np.mean([rewards.exact_match(r["answer"], a) for r, a in zip(rows, answers)])
      em_new = np.mean([rewards.exact_match(t, a) for t, a in zip(new, answers)])
      f1_old = np.mean([rewards.f1(r["answer"], a) for r, a in zip(rows, answers)])
      f1_new = np.mean([rewards.f1(t, a) for t, a in zip(new, answers)])
      changed = sum(t != r["answer"] for t, r in zip(new, rows))
      print(
          f"{path[-44:]:<44}{system:<11}{len(rows):>5}{changed:>9}"
          f"{100 * em_old:>8.2f}{100 * em_new:>8.2f}{100 * f1_old:>8.2f}{100 * f1_new:>8.2f}"
      )


if __name__ == "__main__":
  main(sys.argv[1:])
