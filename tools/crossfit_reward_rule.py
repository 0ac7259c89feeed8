"""Apply the pre-registered reward rule of the cross-fitted experiment (docs/results.md,
"Pre-registration"): the reward is chosen on the learnability check and `val` only.

  python tools/crossfit_reward_rule.py runs/exp/nq_cf_learn runs/exp/nq_cf_learn_ll [--out=F]

Rule: take the reward whose learnability policy gains more greedy F1 over the reference on its
training questions (results.json of each run); if the two gains are within `--margin` (1.0) F1 of
each other, take the one whose policy has the higher F1 on `val` (results_val.json: one evaluation
of each learnability policy); if that is also within the margin, keep the paper's reward. Prints
(and writes with --out) a JSON object with every number the decision read and the reward chosen:
"paper" (lambda_ll = 0) or "ll".
"""

import argparse
import json
import pathlib
import sys


def _f1(path: pathlib.Path, system: str) -> float:
  try:
    return float(json.loads(path.read_text())["systems"][system]["f1"])
  except FileNotFoundError:
    sys.exit(f"{path}: missing (run that evaluation first)")
  except (KeyError, TypeError, ValueError) as e:
    sys.exit(f"{path}: no systems.{system}.f1 ({e!r})")


def decide(
    gain_paper: float, gain_ll: float, val_paper: float | None, val_ll: float | None, margin: float = 1.0
) -> tuple[str, str]:
  """(reward, reason): the rule above, on F1 x100. val_* are read only when the gains tie."""
  if abs(gain_ll - gain_paper) > margin:
    return ("ll" if gain_ll > gain_paper else "paper"), "learnability gains differ by more than the margin"
  if val_paper is None or val_ll is None:
    raise ValueError("the learnability gains tie: the rule needs both policies' val F1")
  if abs(val_ll - val_paper) > margin:
    return ("ll" if val_ll > val_paper else "paper"), "gains tie; val F1 differs by more than the margin"
  return "paper", "gains and val F1 both within the margin: the paper's reward"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("paper_run", type=pathlib.Path, help="workdir of `learn` (lambda_ll = 0)")
  p.add_argument("ll_run", type=pathlib.Path, help="workdir of `learn,reward=ll`")
  p.add_argument("--margin", type=float, default=1.0)
  p.add_argument("--out", type=pathlib.Path)
  a = p.parse_args(argv)
  gain = {
      name: _f1(run / "results.json", "policy") - _f1(run / "results.json", "reference")
      for name, run in (("paper", a.paper_run), ("ll", a.ll_run))
  }
  val = {}
  if abs(gain["ll"] - gain["paper"]) <= a.margin:
    val = {name: _f1(run / "results_val.json", "policy") for name, run in (("paper", a.paper_run), ("ll", a.ll_run))}
  reward, reason = decide(gain["paper"], gain["ll"], val.get("paper"), val.get("ll"), a.margin)
  out = {
      "reward": reward,
      "reason": reason,
      "margin": a.margin,
      "learn_gain_f1": gain,
      "val_policy_f1": val or None,
      "runs": {"paper": str(a.paper_run), "ll": str(a.ll_run)},
  }
  text = json.dumps(out, indent=1)
  print(text)
  if a.out:
    a.out.write_text(text + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
