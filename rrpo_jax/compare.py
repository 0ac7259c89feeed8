"""Paired comparison of two evaluated systems on the same questions, one run or cross-fitted folds pooled.

  python -m rrpo_jax.compare A B [--systems=policy:policy] [--out=FILE] [--json]
  python -m rrpo_jax.compare runs/a_f0,runs/a_f1 runs/b_f0,runs/b_f1 --out=results/pooled.json
  python -m rrpo_jax.compare runs/a_f0,runs/a_f1 --systems=policy:reference   # two systems, same runs

A and B each name a run or a comma list of runs. A run is a workdir (its results.json names the
evaluated step, whose per-question rows are in eval/step_N/results.json), a named evaluation's
results_NAME.json (rows in eval/NAME/step_N/: the transfer reader's results_transfer.json), such an
eval/.../step_N/results.json, or a directory holding one: a local path or a gs:// (s3://, az://) URI.
A comma list pools the runs' per-question rows (the folds of a cross-fitted experiment,
data.folds: each fold's run reports on the questions it did not train on), so the comparison runs
over all of them; a question in two runs of one side is an error naming both runs. B left out
means A's runs again: compare two of their systems (--systems=policy:reference, or policy:retriever).
--systems=SA:SB names the system of each side (default policy:policy; --system_a / --system_b alike).

Prints, for EM and F1, mean(A - B) x100 with a 95% paired-bootstrap interval, the paired t-test's
p and the minimum detectable effect at 80% power (mde) over the questions both sides evaluated,
and how many questions each side had. --out writes the comparison and both sides' pooled
per-question rows (each with the "run" it came from) as JSON. Exit status 2 with one line for a
missing or malformed file, a system the file does not hold, or folds that share questions.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

from rrpo_jax import paths
from rrpo_jax.core import stats


class CompareError(ValueError):
  """A results file is missing or does not hold what the comparison needs; names the file."""


def _load(path: str) -> dict:
  try:
    return paths.read_json_object(path)
  except OSError as e:
    raise CompareError(f"{path}: cannot read ({e.strerror})") from e
  except ValueError as e:
    raise CompareError(str(e)) from e


def per_query_results(path: str) -> tuple[str, dict]:
  """(file, results with "per_query") for a workdir, a results.json or an eval/step_N directory."""
  if paths.isdir(path):
    if paths.isfile(paths.join(path, "results.json")):
      return per_query_results(paths.join(path, "results.json"))
    raise CompareError(f"{path}: no results.json (evaluate the run first: --config.mode=eval)")
  data = _load(path)
  if "per_query" in data:
    return path, data
  if "step" in data:  # a workdir's results.json (rows under eval/step_N/) or results_NAME.json (eval/NAME/step_N/)
    base = os.path.basename(path)
    where = ("eval", base[len("results_") : -len(".json")]) if base.startswith("results_") else ("eval",)
    inner = paths.join(os.path.dirname(paths.absolute(path)), *where, f"step_{data['step']}", "results.json")
    if paths.isfile(inner):
      return inner, _load(inner)
    raise CompareError(f"{path}: names step {data['step']}, but {inner} is missing")
  raise CompareError(f"{path}: field 'per_query': missing (not an rrpo_jax evaluation results file)")


def rows(path: str, data: dict, system: str) -> list[dict]:
  per_query = data["per_query"]
  if system not in per_query:
    raise CompareError(f"{path}: field 'per_query.{system}': missing; it holds {sorted(per_query)}")
  out = per_query[system]
  for i, row in enumerate(out):
    missing = [k for k in ("qid", "em", "f1") if k not in row]
    if missing:
      raise CompareError(f"{path}: record per_query.{system}[{i}]: field '{missing[0]}' missing")
  return out


def _runs(spec: str) -> list[str]:
  runs = [r.strip() for r in spec.split(",") if r.strip()]
  if not runs:
    raise CompareError(f"{spec!r}: names no run")
  return runs


def pooled_rows(spec: str, system: str) -> tuple[list[str], list[dict], list]:
  """(results files, the system's per-question rows of every run in `spec` concatenated, each with
  its "run", the runs' k values). Pooled runs must hold disjoint questions (cross-fitting folds)."""
  files: list[str] = []
  pooled: list[dict] = []
  ks: list = []
  owner: dict[str, str] = {}
  for run in _runs(spec):
    path, data = per_query_results(run)
    run_rows = rows(path, data, system)
    qids = [str(r["qid"]) for r in run_rows]
    if len(set(qids)) != len(qids):
      dup = next(q for q, count in collections.Counter(qids).items() if count > 1)
      raise CompareError(f"{path}: field 'per_query.{system}': question {dup!r} appears twice")
    for other in files:
      shared = [q for q in qids if owner.get(q) == other]
      if shared:
        raise CompareError(
            f"{other} and {path} share {len(shared)} questions (e.g. {shared[0]!r}): pooled runs must be "
            "folds with disjoint questions (the same data.folds, one run per data.fold)"
        )
    owner.update((q, path) for q in qids)
    pooled += [{**r, "run": path} for r in run_rows]
    files.append(path)
    ks.append(data.get("k"))
  return files, pooled, ks


def _side(files: list[str], system: str, n: int) -> str:
  where = files[0] if len(files) == 1 else f"{len(files)} runs pooled ({', '.join(files)})"
  return f"{system} in {where} ({n} questions)"


def run(argv=None) -> str:
  p = argparse.ArgumentParser(
      prog="python -m rrpo_jax.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("a", help="a run, or a comma list of runs whose rows are pooled")
  p.add_argument("b", nargs="?", default=None, help="the same for side B (default: A's runs)")
  p.add_argument("--systems", default=None, help="SYSTEM_A:SYSTEM_B, e.g. policy:reference")
  p.add_argument("--system_a", default="policy")
  p.add_argument("--system_b", default="policy")
  p.add_argument("--out", default=None, help="write the comparison and the pooled per-question rows here (JSON)")
  p.add_argument("--resamples", type=int, default=stats.RESAMPLES)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", action="store_true", help="print the comparison as JSON")
  args = p.parse_args(argv)
  if args.systems is not None:
    sa, sep, sb = args.systems.partition(":")
    if not sep or not sa.strip() or not sb.strip():
      raise CompareError(f"--systems={args.systems!r}: expected SYSTEM_A:SYSTEM_B, e.g. policy:reference")
    args.system_a, args.system_b = sa.strip(), sb.strip()
  spec_b = args.a if args.b is None else args.b
  if args.b is None and args.system_a == args.system_b:
    raise CompareError(
        f"with one side only, name two systems of its runs (--systems=policy:reference), not {args.system_a} twice"
    )
  files_a, rows_a, ks_a = pooled_rows(args.a, args.system_a)
  files_b, rows_b, ks_b = pooled_rows(spec_b, args.system_b)
  if len(set(map(str, ks_a + ks_b))) > 1:
    print(f"note: k differs ({', '.join(map(str, ks_a))} vs {', '.join(map(str, ks_b))})", file=sys.stderr)
  result = stats.compare_rows(rows_a, rows_b, resamples=args.resamples, seed=args.seed)
  q = result["questions"]
  if q["common"] == 0:
    raise CompareError(f"{', '.join(files_a)} and {', '.join(files_b)} share no question ids: nothing to compare")
  side_a = {"runs": files_a, "system": args.system_a, **({"path": files_a[0]} if len(files_a) == 1 else {})}
  side_b = {"runs": files_b, "system": args.system_b, **({"path": files_b[0]} if len(files_b) == 1 else {})}
  summary = {"a": side_a, "b": side_b, **result, "resamples": args.resamples, "seed": args.seed}
  if args.out:
    paths.write_text(args.out, json.dumps({**summary, "per_query": {"a": rows_a, "b": rows_b}}, indent=1))
  if args.json:
    return json.dumps(summary, indent=1)
  lines = [
      f"A = {_side(files_a, args.system_a, q['a'])}",
      f"B = {_side(files_b, args.system_b, q['b'])}",
      f"paired over the {q['common']} questions both evaluated"
      + (
          ""
          if q["common"] == q["a"] == q["b"]
          else f" ({q['a'] - q['common']} of A and " f"{q['b'] - q['common']} of B have no partner and are left out)"
      ),
      f"A - B (x100; 95% paired-bootstrap interval, {args.resamples:,} resamples; paired t-test p; "
      "mde: minimum detectable effect at 80% power):",
  ]
  for m in ("em", "f1"):
    c = result[m]
    verdict = stats.verdict(c)
    lines.append(f"  {m.upper():<3} {stats.describe(c)}  ({verdict}; differs on {100 * c['differ']:.0f}% of questions)")
  if args.out:
    lines.append(f"wrote {args.out}")
  return "\n".join(lines)


def main(argv=None) -> None:
  try:
    print(run(argv))
  except CompareError as e:
    print(f"rrpo_jax.compare: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
