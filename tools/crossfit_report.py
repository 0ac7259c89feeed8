"""The pooled report of a cross-fitted experiment (docs/results.md, "Cross-fitted NQ"): every
pre-registered comparison over both folds' held-out rows, as markdown tables and one JSON file.

  python tools/crossfit_report.py [--runs=runs/exp] [--exp=nq_cf] [--reward=auto] [--out=results/nq_cf]
  python tools/crossfit_report.py --exp=hotpotqa_cf --warmup=is_supporting --out=results/hotpotqa_cf

Reads the fold workdirs <runs>/<exp>_rrpo_s<S>_f<F><suffix> (suffix "_ll" when the reward rule chose
the likelihood reward: --reward=auto reads <runs>/<exp>_reward_choice.json), their transfer
evaluations (results_transfer.json) and the reader-preference warm-ups <exp>_sft_reader_f<F>. Each
side of a comparison pools the two folds' per-question rows (rrpo_jax.compare.pooled_rows: the folds
must hold disjoint questions); the difference is A - B x100 with the 95% paired-bootstrap interval,
the paired t-test's p and the minimum detectable effect at 80% power. A comparison whose runs are
not all evaluated yet is listed as missing, so the report can be drawn while the queue runs.

It also summarises each finished RRPO run's training (its metrics.jsonl, first and second half of
the steps): the sampled reward minus the reference's greedy value (mean +- standard error over
steps, and its F1 part), the share of episodes that tie the reference at every pick, KL and entropy.

Writes <out>/pooled.json (every comparison, each fold's difference, the pooled system means, the
targets' verdicts and the training summaries), <out>/pooled_rows.csv (the pooled per-question rows:
one row per comparison and question, both sides' run and metrics, exactly the pairs each difference
is computed on), <out>/pooled.png (a forest plot of the F1 differences), <out>/<run>_rows.json (each
run's per-question rows, copied from its workdir) and <out>/<run>_metrics.jsonl (each finished RRPO
run's per-step metrics).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rrpo_jax import compare  # noqa: E402  pylint: disable=g-import-not-at-top
from rrpo_jax.core import stats  # noqa: E402  pylint: disable=g-import-not-at-top
from rrpo_jax.train import metrics as metrics_lib  # noqa: E402  pylint: disable=g-import-not-at-top

FOLDS = (0, 1)
SEEDS = (0, 1)
METRICS = ("em", "f1", "hit")


@dataclasses.dataclass(frozen=True)
class Side:
  """One side of a comparison: a system of the folds' runs (`results` names the results file)."""

  runs: tuple[str, ...]
  system: str
  results: str = "results.json"

  def spec(self, root: str) -> str:
    return ",".join(os.path.join(root, r, self.results) for r in self.runs)


@dataclasses.dataclass(frozen=True)
class Comparison:
  name: str
  a: Side
  b: Side
  target: str = ""  # "primary": diff >= +1.0 and interval above 0; "not_below_0": upper end >= 0


def plan(exp: str, suffix: str, warmup: str = "has_answer") -> list[Comparison]:
  """The pre-registered comparisons, primary first (warmup: the RRPO runs' warm-up labels, a name)."""
  rrpo = lambda s: tuple(f"{exp}_rrpo_s{s}_f{f}{suffix}" for f in FOLDS)  # noqa: E731
  reader_warmup = tuple(f"{exp}_sft_reader_f{f}" for f in FOLDS)
  out = [
      Comparison(f"RRPO s{s} - its initialisation", Side(rrpo(s), "policy"), Side(rrpo(s), "reference"), "primary")
      for s in SEEDS
  ]
  for s in SEEDS:
    out.append(
        Comparison(f"RRPO s{s} - BM25 order", Side(rrpo(s), "policy"), Side(rrpo(s), "retriever"), "not_below_0")
    )
  for s in SEEDS:
    out.append(
        Comparison(f"RRPO s{s} - reader-preference warm-up", Side(rrpo(s), "policy"), Side(reader_warmup, "reference"))
    )
  out.append(Comparison(f"{warmup} warm-up - BM25 order", Side(rrpo(0), "reference"), Side(rrpo(0), "retriever")))
  # the warm-up runs evaluate their reference only (launch/nq_crossfit_queue.sh): BM25 from the RRPO runs
  out.append(
      Comparison("reader-preference warm-up - BM25 order", Side(reader_warmup, "reference"), Side(rrpo(0), "retriever"))
  )
  out.append(
      Comparison(
          f"reader-preference warm-up - {warmup} warm-up", Side(reader_warmup, "reference"), Side(rrpo(0), "reference")
      )
  )
  for s in SEEDS:
    t = "results_transfer.json"
    out.append(
        Comparison(
            f"transfer (SmolLM2-135M): RRPO s{s} - its initialisation",
            Side(rrpo(s), "policy", t),
            Side(rrpo(s), "reference", t),
            "not_below_0",
        )
    )
  return out


def reward_suffix(runs: str, exp: str, reward: str) -> str:
  if reward == "auto":
    path = os.path.join(runs, f"{exp}_reward_choice.json")
    if not os.path.isfile(path):
      raise compare.CompareError(f"{path}: missing (apply the reward rule first, or pass --reward=paper|ll)")
    with open(path, encoding="utf-8") as f:
      reward = json.load(f)["reward"]
  if reward not in ("paper", "ll"):
    raise compare.CompareError(f"--reward={reward!r}: expected auto, paper or ll")
  return "_ll" if reward == "ll" else ""


def _missing(root: str, side: Side) -> list[str]:
  return [
      os.path.join(root, r, side.results) for r in side.runs if not os.path.isfile(os.path.join(root, r, side.results))
  ]


def _metrics(rows_a: list[dict], rows_b: list[dict]) -> tuple[str, ...]:
  extra = ("q",) if all("q" in r for r in rows_a + rows_b) else ()
  return METRICS + extra


def verdict(c: dict, target: str) -> str | None:
  """The target's verdict on F1 (None for a comparison without one)."""
  f1 = c["f1"]
  lo, hi = f1["ci95"]
  if target == "primary":
    return "met" if f1["diff"] >= 1.0 and lo > 0 else "not met"
  if target == "not_below_0":
    return "met" if hi >= 0 else "not met"
  return None


def paired(name: str, rows_a: list[dict], rows_b: list[dict], metrics: tuple[str, ...], root: str) -> list[dict]:
  """The question pairs a pooled difference is computed on: one row a question both sides hold, in
  side A's order, with each side's run (its workdir under `root`) and metrics (6 decimals)."""
  by_b = {str(r["qid"]): r for r in rows_b}
  workdir = lambda path: os.path.relpath(path, root).split(os.sep)[0]  # noqa: E731
  out = []
  for r in rows_a:
    b = by_b.get(str(r["qid"]))
    if b is None:
      continue
    row = {"comparison": name, "qid": str(r["qid"])}
    row["run_a"], row["run_b"] = workdir(r["run"]), workdir(b["run"])
    for m in metrics:
      row[f"a_{m}"], row[f"b_{m}"] = round(r[m], 6), round(b[m], 6)
    out.append(row)
  return out


def write_paired(rows: list[dict], path: str) -> None:
  """<out>/pooled_rows.csv: every comparison's question pairs (`paired`); metrics in [0, 1]."""
  fields: list[str] = []
  for r in rows:
    fields += [k for k in r if k not in fields]
  with open(path, "w", encoding="utf-8", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, restval="")
    w.writeheader()
    w.writerows(rows)


def evaluate(root: str, comp: Comparison, resamples: int) -> tuple[dict, list[dict]]:
  """(the pooled comparison, each fold's F1 difference and both sides' pooled means; its question
  pairs, `paired`)."""
  files_a, rows_a, _ = compare.pooled_rows(comp.a.spec(root), comp.a.system)
  files_b, rows_b, _ = compare.pooled_rows(comp.b.spec(root), comp.b.system)
  # Recorded relative to the runs folder, so the report names no machine's paths.
  rel = lambda fs: [os.path.relpath(f, root) for f in fs]  # noqa: E731
  metrics = _metrics(rows_a, rows_b)
  result = stats.compare_rows(rows_a, rows_b, metrics=metrics, resamples=resamples)
  folds = []
  for fa in files_a:  # fold f of side A against the rows of side B it shares (the same fold's questions)
    fold_rows = [r for r in rows_a if r["run"] == fa]
    c = stats.compare_rows(fold_rows, rows_b, metrics=("f1",), resamples=resamples)
    folds.append({"run": rel([fa])[0], "n": c["questions"]["common"], "f1": c["f1"]})
  means = lambda rows: {m: 100 * sum(r[m] for r in rows) / len(rows) for m in metrics}  # noqa: E731
  out = {
      "name": comp.name,
      "a": {
          "runs": list(comp.a.runs),
          "files": rel(files_a),
          "system": comp.a.system,
          "n": len(rows_a),
          "mean": means(rows_a),
      },
      "b": {
          "runs": list(comp.b.runs),
          "files": rel(files_b),
          "system": comp.b.system,
          "n": len(rows_b),
          "mean": means(rows_b),
      },
      **result,
      "folds": folds,
      "resamples": resamples,
  }
  if comp.target:
    out["target"] = {"kind": comp.target, "verdict": verdict(result, comp.target)}
  return out, paired(comp.name, rows_a, rows_b, metrics, root)


def table(done: list[dict]) -> list[str]:
  lines = [
      "| paired difference (x100, 95% CI, p, mde80) | n | EM | F1 | F1 per fold | F1 differs on | target |",
      "|---|---|---|---|---|---|---|",
  ]
  for c in done:
    per_fold = " / ".join(f"{f['f1']['diff']:+.2f}" for f in c["folds"])
    target = c.get("target", {}).get("verdict") or ""
    q = c["questions"]
    n = f"{q['common']:,}" + ("" if q["a"] == q["b"] == q["common"] else f" (of {q['a']:,} / {q['b']:,})")
    lines.append(
        f"| {c['name']} | {n} | {stats.describe(c['em'])} | {stats.describe(c['f1'])} | "
        f"{per_fold} | {100 * c['f1']['differ']:.0f}% | {target} |"
    )
  return lines


def systems_table(done: list[dict]) -> list[str]:
  """Pooled means of each distinct (runs, system) side met in the comparisons."""
  seen: dict[tuple, dict] = {}
  for c in done:
    for side in ("a", "b"):
      s = c[side]
      seen.setdefault((tuple(s["files"]), s["system"]), s)
  lines = ["| runs (pooled folds) | system | reader | n | EM | F1 | hit | q |", "|---|---|---|---|---|---|---|---|"]
  for (files, system), s in seen.items():
    m = s["mean"]
    reader = "transfer" if any("/transfer/" in f for f in files) else "training"
    q = f"{m['q']:.2f}" if "q" in m else "-"
    lines.append(
        f"| {', '.join(s['runs'])} | {system} | {reader} | {s['n']:,} | {m['em']:.2f} | {m['f1']:.2f} | "
        f"{m['hit']:.2f} | {q} |"
    )
  return lines


def _mean_se(xs: list[float]) -> tuple[float, float]:
  n = len(xs)
  mean = sum(xs) / n
  var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
  return mean, (var / n) ** 0.5


def training_summary(metrics_path: str) -> dict:
  """A finished RRPO run's training, per half of its steps: {"steps": [[lo, hi], ...], "halves": [...]}.

  Each half: n steps; reward - value and reward_f1 - value_f1 as [mean, standard error] over steps (a
  step's reward is the mean over its sampled episodes, value the reference's greedy top-k reward on
  the same questions); the mean of reward_eq_value_frac (episodes tied with the reference at every
  pick), kl and entropy. The last row of a step counts (a resumed run rewrites what it redid)."""
  if not os.path.isfile(metrics_path):
    raise compare.CompareError(f"{metrics_path}: missing")
  by_step = {r["step"]: r for r in metrics_lib.read_jsonl(metrics_path) if r.get("phase") == "rrpo" and "reward" in r}
  if not by_step:
    raise compare.CompareError(f"{metrics_path}: no rrpo rows")
  steps = sorted(by_step)
  mid = (len(steps) + 1) // 2
  halves, spans = [], []
  for part in (steps[:mid], steps[mid:]):
    if not part:
      continue
    rows = [by_step[s] for s in part]
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    spans.append([part[0], part[-1]])
    halves.append(
        {
            "n": len(rows),
            "reward_minus_value": _mean_se([r["reward"] - r["value"] for r in rows]),
            "f1_minus_value_f1": _mean_se([r["reward_f1"] - r["value_f1"] for r in rows]),
            "tied": mean("reward_eq_value_frac"),
            "kl": mean("kl"),
            "entropy": mean("entropy"),
        }
    )
  return {"steps": spans, "halves": halves}


def training_table(summaries: dict[str, dict]) -> list[str]:
  lines = [
      "| RRPO run | steps (first / second half) | reward - value (+- se) | F1 part | all-tied | KL | entropy |",
      "|---|---|---|---|---|---|---|",
  ]
  cells = (
      lambda h: "{:+.3f} +- {:.3f}".format(*h["reward_minus_value"]),
      lambda h: f"{h['f1_minus_value_f1'][0]:+.3f}",
      lambda h: f"{100 * h['tied']:.0f}%",
      lambda h: f"{h['kl']:.3f}",
      lambda h: f"{h['entropy']:.2f}",
  )
  for run, t in summaries.items():
    row = [run, " / ".join(f"{a}-{b}" for a, b in t["steps"])]
    row += [" / ".join(cell(h) for h in t["halves"]) for cell in cells]
    lines.append("| " + " | ".join(row) + " |")
  return lines


def _copy_rows(root: str, comps: list[Comparison], out: str) -> list[str]:
  written = []
  for comp in comps:
    for side in (comp.a, comp.b):
      for run in side.runs:
        src = os.path.join(root, run, side.results)
        if not os.path.isfile(src):
          continue
        path, data = compare.per_query_results(src)
        tag = "" if side.results == "results.json" else "_" + side.results[len("results_") : -len(".json")]
        dest = os.path.join(out, f"{run}{tag}_rows.json")
        if dest not in written:
          with open(dest, "w", encoding="utf-8") as f:
            json.dump({"source": path, **data}, f)
          written.append(dest)
  return written


def plot(done: list[dict], path: str, title: str) -> None:
  """A forest plot: each comparison's pooled F1 difference with its 95% interval (black), each fold's
  own difference (open circles), 0 and the primary target +1.0 as vertical lines."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(10, 0.45 * len(done) + 1.4))
  for y, c in enumerate(reversed(done)):
    lo, hi = c["f1"]["ci95"]
    ax.plot([lo, hi], [y, y], color="black", linewidth=1.5)
    ax.plot([c["f1"]["diff"]], [y], "o", color="tab:red" if c.get("target", {}).get("kind") == "primary" else "black")
    for f in c["folds"]:
      ax.plot([f["f1"]["diff"]], [y], "o", mfc="none", color="grey", markersize=5)
  ax.axvline(0.0, color="grey", linewidth=0.8)
  ax.axvline(1.0, color="tab:red", linewidth=0.8, linestyle=":")
  ax.set_yticks(range(len(done)), [f"{c['name']} (n={c['questions']['common']:,})" for c in reversed(done)], fontsize=8)
  ax.set_xlabel("F1 difference (x100)")
  ax.set_title(f"{title}\n95% paired-bootstrap intervals; open circles: each fold; dotted: the +1.0 target", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report(
    runs: str, exp: str, reward: str, out: str | None, resamples: int = stats.RESAMPLES, warmup: str = "has_answer"
) -> tuple[str, bool]:
  """(the markdown report, whether a comparison failed on a malformed file)."""
  suffix = reward_suffix(runs, exp, reward)
  comps = plan(exp, suffix, warmup)
  done, pairs, missing, failed = [], [], [], []
  for comp in comps:
    gaps = _missing(runs, comp.a) + _missing(runs, comp.b)
    if gaps:
      missing.append(f"- {comp.name}: waits for {', '.join(sorted(set(gaps)))}")
      continue
    try:
      summary, rows = evaluate(runs, comp, resamples)
      done.append(summary)
      pairs += rows
    except compare.CompareError as e:
      failed.append(f"- {comp.name}: {e}")
  rrpo_runs = [r for comp in comps if comp.target == "primary" for r in comp.a.runs]  # every seed's folds
  trained = [r for r in rrpo_runs if os.path.isfile(os.path.join(runs, r, "results.json"))]
  summaries = {}
  for run in trained:
    path = os.path.join(runs, run, "metrics.jsonl")
    try:
      summaries[run] = training_summary(path)
    except compare.CompareError as e:
      failed.append(f"- training of {run}: {e}")
    except KeyError as e:
      failed.append(f"- training of {run}: {path}: an rrpo row lacks field {e}")
  lines = [f"Cross-fitted report of {exp} (reward: {'ll' if suffix else 'paper'}), pooled over folds {FOLDS}", ""]
  if done:
    lines += systems_table(done) + [""] + table(done) + [""]
  if summaries:
    lines += training_table(summaries) + [""]
  if missing:
    lines += ["Not yet evaluated:", *missing, ""]
  if failed:
    lines += ["Cannot compare (fix these files):", *failed, ""]
  if out:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "pooled.json"), "w", encoding="utf-8") as f:
      json.dump(
          {
              "exp": exp,
              "reward_suffix": suffix,
              "comparisons": done,
              "training": summaries,
              "missing": missing,
              "failed": failed,
          },
          f,
          indent=1,
      )
    write_paired(pairs, os.path.join(out, "pooled_rows.csv"))
    copied = _copy_rows(runs, comps, out)
    for run in summaries:
      shutil.copyfile(os.path.join(runs, run, "metrics.jsonl"), os.path.join(out, f"{run}_metrics.jsonl"))
    lines.append(
        f"wrote {os.path.join(out, 'pooled.json')}, {os.path.join(out, 'pooled_rows.csv')} ({len(pairs)} "
        f"question pairs), {len(copied)} per-run row files and {len(summaries)} training metrics files"
    )
    if done:
      plot(
          done,
          os.path.join(out, "pooled.png"),
          f"{exp}: pooled held-out comparisons (reward {'ll' if suffix else 'paper'})",
      )
      lines.append(f"wrote {os.path.join(out, 'pooled.png')}")
  return "\n".join(lines), bool(failed)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--runs", default="runs/exp")
  p.add_argument("--exp", default="nq_cf")
  p.add_argument("--reward", default="auto", help="auto (the rule's choice), paper or ll")
  p.add_argument("--out", default=None, help="e.g. results/nq_cf")
  p.add_argument("--resamples", type=int, default=stats.RESAMPLES)
  p.add_argument("--warmup", default="has_answer", help="the RRPO runs' warm-up labels (HotpotQA: is_supporting)")
  a = p.parse_args(argv)
  try:
    text, failed = report(a.runs, a.exp, a.reward, a.out, a.resamples, a.warmup)
  except compare.CompareError as e:
    print(f"crossfit_report: {e}", file=sys.stderr)
    return 2
  print(text)
  return 2 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
