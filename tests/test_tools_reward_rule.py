"""tools/crossfit_reward_rule.py: the pre-registered reward rule, on written results files."""

import json
import pathlib
import subprocess
import sys

import pytest

TOOL = pathlib.Path(__file__).parents[1] / "tools" / "crossfit_reward_rule.py"


def _run(tmp_path, learn, val=None):
  """learn: {name: (reference F1, policy F1)}; val: {name: policy F1} (results_val.json)."""
  for name, (ref, pol) in learn.items():
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(json.dumps({"systems": {"reference": {"f1": ref}, "policy": {"f1": pol}}}))
    if val:
      (d / "results_val.json").write_text(json.dumps({"systems": {"policy": {"f1": val[name]}}}))
  p = subprocess.run(
      [sys.executable, str(TOOL), str(tmp_path / "paper"), str(tmp_path / "ll")], capture_output=True, text=True
  )
  return p


@pytest.mark.parametrize(
    "learn,val,want",
    [
        ({"paper": (30.0, 32.0), "ll": (30.0, 36.0)}, None, "ll"),  # gains 2 vs 6
        ({"paper": (30.0, 38.0), "ll": (31.0, 34.0)}, None, "paper"),  # gains 8 vs 3
        ({"paper": (30.0, 33.0), "ll": (30.0, 33.5)}, {"paper": 20.0, "ll": 22.5}, "ll"),  # tie, val decides
        ({"paper": (30.0, 33.0), "ll": (30.0, 33.5)}, {"paper": 20.0, "ll": 20.9}, "paper"),  # both tie
    ],
)
def test_rule(tmp_path, learn, val, want):
  p = _run(tmp_path, learn, val)
  assert p.returncode == 0, p.stderr
  assert json.loads(p.stdout)["reward"] == want


def test_tie_without_val_names_the_missing_file(tmp_path):
  p = _run(tmp_path, {"paper": (30.0, 33.0), "ll": (30.0, 33.2)})
  assert p.returncode != 0
  assert "results_val.json: missing" in p.stderr
