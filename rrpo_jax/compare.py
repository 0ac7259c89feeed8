"""Paired comparison of two evaluated runs on the same questions.

  python -m rrpo_jax.compare RUN_OR_RESULTS_A RUN_OR_RESULTS_B [--system_a=policy] [--system_b=policy]

Each argument is a run's workdir (its results.json names the evaluated step, whose per-question
rows are in eval/step_N/results.json), such an eval/step_N/results.json, or a directory holding one:
a local path or a gs:// (s3://, az://) URI.
Prints, for EM and F1, mean(A - B) x100 with a 95% paired-bootstrap interval and the paired
t-test's p over the questions both evaluated, and how many questions each side had. Exit status 2
with one line for a missing or malformed file or a system the file does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rrpo_jax import paths
from rrpo_jax import stats


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
  if "step" in data:  # a workdir's top-level results.json: the rows are under eval/step_N/
    inner = paths.join(os.path.dirname(paths.absolute(path)), "eval", f"step_{data['step']}", "results.json")
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


def run(argv=None) -> str:
  p = argparse.ArgumentParser(
      prog="python -m rrpo_jax.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("a")
  p.add_argument("b")
  p.add_argument("--system_a", default="policy")
  p.add_argument("--system_b", default="policy")
  p.add_argument("--resamples", type=int, default=stats.RESAMPLES)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", action="store_true", help="print the comparison as JSON")
  args = p.parse_args(argv)
  path_a, data_a = per_query_results(args.a)
  path_b, data_b = per_query_results(args.b)
  rows_a, rows_b = rows(path_a, data_a, args.system_a), rows(path_b, data_b, args.system_b)
  if data_a.get("k") != data_b.get("k"):
    print(f"note: k differs ({data_a.get('k')} vs {data_b.get('k')})", file=sys.stderr)
  result = stats.compare_rows(rows_a, rows_b, resamples=args.resamples, seed=args.seed)
  q = result["questions"]
  if q["common"] == 0:
    raise CompareError(f"{path_a} and {path_b} share no question ids: nothing to compare")
  if args.json:
    return json.dumps(
        {"a": {"path": path_a, "system": args.system_a}, "b": {"path": path_b, "system": args.system_b}, **result},
        indent=1,
    )
  lines = [
      f"A = {args.system_a} in {path_a} ({q['a']} questions)",
      f"B = {args.system_b} in {path_b} ({q['b']} questions)",
      f"paired over the {q['common']} questions both evaluated"
      + (
          ""
          if q["common"] == q["a"] == q["b"]
          else f" ({q['a'] - q['common']} of A and " f"{q['b'] - q['common']} of B have no partner and are left out)"
      ),
      f"A - B (x100; 95% paired-bootstrap interval, {args.resamples:,} resamples; paired t-test p):",
  ]
  for m in ("em", "f1"):
    c = result[m]
    verdict = stats.verdict(c)
    lines.append(f"  {m.upper():<3} {stats.describe(c)}  ({verdict}; differs on {100 * c['differ']:.0f}% of questions)")
  return "\n".join(lines)


def main(argv=None) -> None:
  try:
    print(run(argv))
  except CompareError as e:
    print(f"rrpo_jax.compare: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
