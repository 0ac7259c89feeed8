"""Collects an experiment's runs into results/ and prints the tables of docs/results.md.

  python tools/experiment_report.py [--runs=runs/exp] [--out=results]

For every run directory under --runs (the workdirs of configs/experiments/*: <dataset>_sft,
<dataset>_rrpo_s<seed>, <dataset>_abl_<name>) it copies what a reader of the results needs into
<out>/<dataset>/: the report-split evaluation with per-question rows (results JSON), the transfer
evaluation, the training and validation metrics (metrics.jsonl rows of phases rrpo / val / eval),
and draws <out>/<dataset>/training.png (training reward and validation F1 over RRPO steps, one line
per run). Then it prints markdown tables: per dataset, retriever / reference / RRPO with EM/F1 and
the paired intervals; the warm-up's validation check; the ablations' validation F1.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rrpo_jax.train import metrics as metrics_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from rrpo_jax.core import stats  # noqa: E402  pylint: disable=g-import-not-at-top


def _json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _per_query(run, name=""):
  top = os.path.join(run, f"results_{name}.json" if name else "results.json")
  if not os.path.isfile(top):
    return None
  step = _json(top)["step"]
  inner = os.path.join(run, "eval", *((name,) if name else ()), f"step_{step}", "results.json")
  return _json(inner) if os.path.isfile(inner) else None


def _fmt(c):
  return f"{c['diff']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], p={c['p']:.3g}"


def collect(runs: str, out: str) -> list[str]:
  lines = []
  by_dataset = {}
  for run in sorted(glob.glob(os.path.join(runs, "*"))):
    m = re.fullmatch(r"([a-z]+)_(sft|rrpo_s\d+|abl_[\w-]+)", os.path.basename(run))
    if m and os.path.isdir(run):
      by_dataset.setdefault(m.group(1), []).append((m.group(2), run))
  for dataset, items in by_dataset.items():
    dest = os.path.join(out, dataset)
    os.makedirs(dest, exist_ok=True)
    curves = {}
    lines += [f"### {dataset}", ""]
    for kind, run in items:
      rows = metrics_lib.read_jsonl(os.path.join(run, "metrics.jsonl"))
      keep = [r for r in rows if r.get("phase") in ("rrpo", "val", "eval", "eval_transfer")]
      if keep:
        with open(os.path.join(dest, f"{kind}_metrics.jsonl"), "w", encoding="utf-8") as f:
          f.writelines(json.dumps(r) + "\n" for r in keep)
      if kind != "sft":
        curves[kind] = rows
      for name in ("", "transfer"):
        res = _per_query(run, name)
        if res is None:
          continue
        shutil.copy(
            os.path.join(run, f"results_{name}.json" if name else "results.json"),
            os.path.join(dest, f"{kind}{'_' + name if name else ''}_summary.json"),
        )
        with open(os.path.join(dest, f"{kind}{'_' + name if name else ''}.json"), "w", encoding="utf-8") as f:
          json.dump(res, f)
        reader = res.get("reader", {}).get("identity", "")
        reader = json.loads(reader).get("model", reader) if reader.startswith("{") else reader
        lines.append(
            f"{kind}{' (transfer)' if name else ''}: split {res.get('split')}, step {res.get('step')}, "
            f"{next(iter(res['systems'].values()))['queries']} questions, reader {reader}"
        )
        lines.append("")
        lines.append("| system | EM | F1 | hit | answer recall@k |")
        lines.append("|---|---|---|---|---|")
        for system, ms in res["systems"].items():
          lines.append(f"| {system} | {ms['em']:.2f} | {ms['f1']:.2f} | {ms['hit']:.2f} | {ms['answer_recall']:.1f} |")
        lines.append("")
        for pair, c in res.get("comparisons", {}).items():
          verdict = stats.verdict(c["f1"])
          lines.append(
              f"- {pair}: EM {_fmt(c['em'])}; F1 {_fmt(c['f1'])} ({verdict}; F1 differs on "
              f"{100 * c['f1']['differ']:.0f}% of questions)"
          )
        lines.append("")
    lines += ablation_table(dict(items), dest)
    if curves:
      _plot(curves, os.path.join(dest, "training.png"), dataset)
      lines.append(f"![{dataset} training]({os.path.join(out, dataset, 'training.png')})")
      lines.append("")
  return lines


def _val(run, step):
  path = os.path.join(run, "eval", "val", f"step_{step}", "results.json")
  return _json(path) if os.path.isfile(path) else None


def _mean(rows, key):
  vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
  return sum(vals) / len(vals) if vals else float("nan")


def ablation_table(runs: dict, out_dir: str = "") -> list[str]:
  """Validation F1 of every RRPO run (seeds and ablations) at each periodic evaluation: the policy,
  its paired difference to the reference, and to seed 0's policy at the same step (the ablations are
  overrides of seed 0), with the training diagnostics that explain it."""
  rrpo = {k: v for k, v in runs.items() if k.startswith(("rrpo_s", "abl_"))}
  base = rrpo.get("rrpo_s0")
  out = []
  for kind, run in rrpo.items():
    rows = metrics_lib.read_jsonl(os.path.join(run, "metrics.jsonl"))
    train = [r for r in rows if r.get("phase") == "rrpo"]
    for step in sorted(r["step"] for r in rows if r.get("phase") == "val"):
      res = _val(run, step)
      if res is None:
        continue
      if out_dir:  # the per-question validation rows behind the table
        with open(os.path.join(out_dir, f"{kind}_val_step{step}.json"), "w", encoding="utf-8") as f:
          json.dump(res, f)
      pol = res["systems"]["policy"]
      vs_ref = res["comparisons"]["policy-reference"]["f1"]
      vs_base = "-"
      ref_res = _val(base, step) if base and kind != "rrpo_s0" else None
      if ref_res is not None:
        c = stats.compare_rows(res["per_query"]["policy"], ref_res["per_query"]["policy"], metrics=("f1",))
        vs_base = _fmt(c["f1"])
      upto = [r for r in train if r["step"] <= step]
      out.append(
          f"| {kind} | {step} | {pol['f1']:.2f} | {_fmt(vs_ref)} | {vs_base} | "
          f"{100 * _mean(upto, 'reward_eq_value_frac'):.0f}% | {100 * _mean(upto, 'zero_adv_frac'):.0f}% | "
          f"{100 * _mean(upto, 'clip_frac'):.1f}% | "
          f"{upto[-1]['kl'] if upto else float('nan'):.3f} |"
      )
  if not out:
    return []
  return [
      "Validation (val split; selection only): policy F1, paired differences to the reference and to",
      "seed 0's policy at the same step; training diagnostics averaged over steps 1..step (episodes whose",
      "reward equals the reference's value at every step, zero advantages before standardisation,",
      "clipped ratios) and the KL at that step.",
      "",
      "| run | step | val F1 | - reference | - seed 0 | r = V | zero adv. | clipped | KL |",
      "|---|---|---|---|---|---|---|---|---|",
      *out,
      "",
  ]


def _plot(curves, path, title):
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  # the seeds (the headline) blue and red, thick; each ablation its own colour, thin and dashed
  seed_colours, others = ["tab:blue", "tab:red"], [
      c for j, c in enumerate(plt.get_cmap("tab20").colors) if j not in (0, 1, 6, 7)
  ]
  n_seeds = n_others = 0
  for kind, rows in curves.items():
    seed = kind.startswith("rrpo_s")
    if seed:
      colour, n_seeds = seed_colours[n_seeds % 2], n_seeds + 1
    else:
      colour, n_others = others[n_others % len(others)], n_others + 1
    train = [r for r in rows if r.get("phase") == "rrpo" and "reward" in r]
    if train and seed:  # the ablations' training curves would bury the seeds'
      steps = [r["step"] for r in train]
      gap = [r["reward"] - r["value"] for r in train]
      axes[0].plot(steps, gap, alpha=0.35, color=colour)
      window = 8  # trailing mean over 8 steps
      smooth = [
          sum(gap[max(0, i - window + 1) : i + 1]) / len(gap[max(0, i - window + 1) : i + 1]) for i in range(len(gap))
      ]
      axes[0].plot(steps, smooth, color=colour, label=f"{kind} (8-step mean)")
    val = [r for r in rows if r.get("phase") == "val" and "policy_f1" in r]
    if val:  # step 0: the policy is the reference
      axes[1].plot(
          [0] + [r["step"] for r in val],
          [val[0]["reference_f1"]] + [r["policy_f1"] for r in val],
          marker="o",
          color=colour,
          linewidth=2.2 if seed else 1.0,
          linestyle="-" if seed else "--",
          markersize=5 if seed else 3,
          label=f"{kind} policy",
      )
      axes[1].axhline(val[0]["reference_f1"], linestyle=":", color="grey")
      if "retriever_f1" in val[0]:
        axes[1].axhline(val[0]["retriever_f1"], linestyle="--", color="grey", linewidth=0.8)
  axes[0].axhline(0.0, color="grey", linewidth=0.8)
  axes[0].set_title(f"{title}: policy reward - reference value (batch mean, seeds)")
  axes[0].set_xlabel("RRPO step")
  axes[1].set_title(f"{title}: validation F1 (dotted: reference, dashed: retriever)")
  axes[1].set_xlabel("RRPO step")
  for ax in axes:
    if ax.lines:
      ax.legend(fontsize=7, ncol=2 if len(ax.get_legend_handles_labels()[1]) > 6 else 1)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--runs", default="runs/exp")
  p.add_argument("--out", default="results")
  args = p.parse_args()
  print("\n".join(collect(args.runs, args.out)))


if __name__ == "__main__":
  main()
