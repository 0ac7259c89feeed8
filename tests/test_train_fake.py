"""The trainer end to end without a reader model: configs/smoke.py with reader.backend=fake
(deterministic answers, no model, no server), one device. Fast and hermetic."""

import json
import subprocess

import pytest

from rrpo_jax.reader import BACKENDS, Passage, Request, make_reader
from test_train_smoke import ROOT, env_for, main_cmd


def test_fake_reader_is_deterministic_and_never_the_default():
  assert "fake" in BACKENDS
  from rrpo_jax import config as config_lib  # pylint: disable=import-outside-toplevel

  assert config_lib.get_config().reader.backend != "fake"
  reader = make_reader({"backend": "fake", "max_tokens": 2})
  request = Request("q1", "where?", (Passage("1", "Eiffel Tower", "a"), Passage("2", "Louvre Museum Paris", "b")))
  first, again = reader.answer([request]), reader.answer([request])
  assert first[0].text == again[0].text == "Louvre Museum"  # the last passage's title, max_tokens words
  assert json.loads(reader.identity)["backend"] == "fake"


@pytest.mark.slow  # a subprocess run of the entry point: 67 s on a busy 2-core machine
def test_trainer_with_the_fake_reader(tmp_path):
  workdir = tmp_path / "run"
  cmd = main_cmd(
      workdir,
      "mode=sft,rrpo,eval,export",
      "reader.backend=fake",
      f"reader.cache_path={tmp_path / 'c.sqlite'}",
      "rrpo.batch_size=1",
      "eval.batch_size=1",
      "sft.batch_size=1",
  )
  proc = subprocess.run(cmd, cwd=ROOT, env=env_for(1), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "evaluation (step 2)" in proc.stdout and "exported rrpo step 2" in proc.stdout
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["phase"] == "rrpo"] == [1, 2]
  assert {r["phase"] for r in rows} == {"sft", "rrpo", "eval"}
  results = json.loads((workdir / "results.json").read_text())
  assert json.loads(results["reader"]["identity"])["backend"] == "fake"
  assert (workdir / "export" / "model.safetensors").exists()
