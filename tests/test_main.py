"""The entry point: --config.x=y overrides apply, bad values and an unreachable reader end with a
clear message naming the field or the reader (exit status 1, no traceback), checkpoints intact."""

import os
import subprocess

from test_train_smoke import ROOT, env_for, main_cmd


def _run(workdir, *overrides, config="configs/smoke.py", timeout=600):
  return subprocess.run(
      main_cmd(workdir, *overrides, config=config),
      cwd=ROOT,
      env=env_for(2),
      capture_output=True,
      text=True,
      timeout=timeout,
  )


def test_overrides_apply_and_errors_name_the_field(tmp_path):
  proc = _run(tmp_path / "w", "data.num_candidates=2", config="configs/nq.py")
  assert proc.returncode == 1
  # the override reached the config: k=3 no longer fits into 2 candidates
  assert "config.rrpo.k: must be in [1, data.num_candidates=2], got 3" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = _run(tmp_path / "w", "rrpo.batch_size=3")
  assert proc.returncode == 1 and "config.rrpo.batch_size: 3 is not divisible by the 2 devices" in proc.stderr
  proc = _run(tmp_path / "w", "rrpo.k=two")
  assert proc.returncode != 0 and "rrpo.k" in proc.stderr


def test_unreachable_reader_stops_before_the_warm_up(tmp_path):
  """The reader check (train.check_readers) runs before any mode: one line naming the reader, and
  the warm-up never started. A reader lost mid-run stops with the checkpoint intact: see
  tests/test_reader_faults.py (RRPO_JAX_FAULTS=long) and tests/test_reader_check.py."""
  workdir = tmp_path / "w"
  url = "http://127.0.0.1:9/v1"
  proc = _run(workdir, "mode=sft,rrpo", "reader.backend=openai", f"reader.base_url={url}", "reader.max_retries=1")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"rrpo_jax: ReaderUnavailableError: config.reader (backend openai, base_url {url}, "), last
  assert "the reader check before training failed" in last
  assert not (workdir / "checkpoints").exists()  # nothing trained
  assert (workdir / "metrics.jsonl").read_text() == ""


def test_default_workdir_names_config_and_variant():
  from rrpo_jax.main import default_workdir  # pylint: disable=import-outside-toplevel

  assert default_workdir("configs/nq.py") == os.path.join("runs", "nq")
  assert default_workdir("configs/nq.py:paper") == os.path.join("runs", "nq_paper")
