"""A gs:// workdir through etils' own epath mock (tests/harness.py fake_gcs): every file the run
writes and reads, TensorBoard and Orbax included; a full run, a SIGKILL and a resume, and RRPO
initialised from checkpoints in the bucket.

fake_gcs serves gs://BUCKET/PATH from a local folder through epath.testing.mock_epath. Orbax's
array bytes go through TensorStore's own gcs driver, which the Python mock cannot reach: the
harness maps that driver to TensorStore's file driver over the same folder (harness.py says how).
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from harness import fake_gcs
from rrpo_jax.train import metrics as metrics_lib
from rrpo_jax import paths
from test_train_smoke import ROOT, env_for, leaves

BUCKET = "gs://bucket/runs"


def test_paths_on_fake_gcs(tmp_path):
  with fake_gcs(tmp_path / "gcs") as root:
    run = f"{BUCKET}/unit"
    assert not paths.is_local(run) and paths.is_local("runs/x") and paths.absolute(run) == run
    assert paths.join(run, "eval", "step_1") == f"{run}/eval/step_1"
    paths.write_text(paths.join(run, "a", "b.json"), '{"x": 1}')
    assert paths.read_text(f"{run}/a/b.json") == '{"x": 1}' and paths.isfile(f"{run}/a/b.json")
    assert paths.listdir(run) == ["a"] and paths.listdir(f"{run}/missing") == []
    local = tmp_path / "export"
    (local / "sub").mkdir(parents=True)
    (local / "model.bin").write_bytes(b"\x00\x01" * 1000)
    (local / "sub" / "t.txt").write_text("tok")
    paths.copy_tree(str(local), f"{run}/export")
    assert sorted(paths.walk_files(f"{run}/export")) == ["model.bin", "sub/t.txt"]
    on_disk = os.path.join(root, "bucket", "runs", "unit")
    assert open(os.path.join(on_disk, "export", "model.bin"), "rb").read() == b"\x00\x01" * 1000
  assert not os.path.exists(os.path.join(os.getcwd(), "gs:"))  # nothing leaked to a relative 'gs:' folder


def test_a_uri_whose_store_is_not_installed_stops_with_one_line(tmp_path, monkeypatch):
  """gs:// without gcsfs (the [gcs] extra): one ConfigError naming the field and the package, for
  the workdir and for rrpo.init_from (it was a bare ImportError traceback from fsspec)."""
  monkeypatch.setitem(sys.modules, "gcsfs", None)  # as on an install without the [gcs] extra
  assert "gcsfs" in str(paths.backend_problem("gs://bucket/run")) and paths.backend_problem("runs/x") is None
  with fake_gcs(tmp_path / "gcs"):
    assert paths.backend_problem("gs://bucket/run") is None  # the mock stands for an installed store
  env = env_for(1)
  env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "tests", "no_gcsfs"), env.get("PYTHONPATH", "")])
  for where, extra in (
      ("--workdir gs://b/x", []),
      ("config.rrpo.init_from: gs://b/y", ["--config.rrpo.init_from=gs://b/y"]),
  ):
    workdir = "gs://b/x" if not extra else str(tmp_path / "local")
    cmd = [sys.executable, "-m", "rrpo_jax.main", f"--config={ROOT}/configs/smoke.py", f"--workdir={workdir}", *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"rrpo_jax: ConfigError: {where}: gs:// needs gcsfs (pip install -e '.[gcs]'), which is not installed"
    )


def test_metric_writer_on_fake_gcs(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel

  with fake_gcs(tmp_path / "gcs") as root:
    run = f"{BUCKET}/metrics"
    writer = metrics_lib.MetricWriter(run, enabled=True)
    writer.write_config(ml_collections.ConfigDict({"cache": "postgresql://rrpo:s3cret@db:5432/c", "n": 1}))
    for step in (1, 2, 3):
      writer.write("rrpo", step, {"reward": 0.5 * step, "loss": np.float32(1.0)})
    writer.truncate("rrpo", 2)  # a resume drops the rows past its checkpoint
    writer.write("rrpo", 3, {"reward": 9.0})
    writer.close()
    rows = metrics_lib.read_jsonl(f"{run}/metrics.jsonl")
    assert [(r["step"], r["reward"]) for r in rows] == [(1, 0.5), (2, 1.0), (3, 9.0)]
    config = paths.read_text(f"{run}/config.json")
    assert "s3cret" not in config and "postgresql://rrpo:***@db:5432/c" in config
    assert metrics_lib.plot(run) == f"{run}/plots.png"
    local = os.path.join(root, "bucket", "runs", "metrics")
    assert open(os.path.join(local, "plots.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    events = [n for n in os.listdir(os.path.join(local, "tb")) if n.startswith("events.out.tfevents")]
    assert len(events) == 1 and os.path.getsize(os.path.join(local, "tb", events[0])) > 100


def _run(tmp_path, workdir, *overrides, kill_after=""):
  env = env_for(1)
  env.update(RRPO_TEST_FAKE_GCS=str(tmp_path / "gcs"), RRPO_JAX_SCRATCH=str(tmp_path / "scratch"))
  if kill_after:
    env["RRPO_TEST_KILL_AFTER"] = kill_after
  cmd = [
      sys.executable,
      os.path.join(ROOT, "tests", "harness.py"),
      f"--config={ROOT}/configs/smoke.py",
      f"--workdir={workdir}",
      "--config.reader.backend=fake",
      "--config.rrpo.steps=3",
      "--config.sft.batch_size=1",
      "--config.rrpo.batch_size=1",
      "--config.eval.batch_size=1",
      *[f"--config.{o}" for o in overrides],
  ]
  return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)


def _params(tmp_path, workdir: str, step: int):
  with fake_gcs(tmp_path / "gcs"):
    from rrpo_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel

    ck = ckpt_lib.Checkpointer(f"{workdir}/checkpoints/rrpo", keep=10, async_save=False)
    params = ck.restore_params(step)
    ck.close()
  return params


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes on a free 2-core machine; far longer on a shared one
def test_full_run_kill_and_resume_on_a_gs_workdir(tmp_path):
  """sft -> rrpo -> eval -> export on gs://; then the same training SIGKILLed after the step-2 save
  (its asynchronous write may still be in flight) and resumed: the same final params, bit for bit."""
  full = f"{BUCKET}/full"
  proc = _run(tmp_path, full, "mode=sft,rrpo,eval,export")
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "evaluation (step 3)" in proc.stdout and "exported rrpo step 3" in proc.stdout
  local = tmp_path / "gcs" / "bucket" / "runs" / "full"
  for name in ("config.json", "metrics.jsonl", "results.json", "plots.png", "eval/step_3/policy.trec"):
    assert (local / name).is_file(), name
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(local / "tb"))
  assert (local / "export" / "model.safetensors").is_file() and (local / "export" / "tokenizer.json").is_file()
  for phase in ("sft/4", "rrpo/3"):  # Orbax's GCS commit protocol: a marker file instead of a rename
    assert (local / "checkpoints" / phase / "commit_success.txt").is_file(), phase
  assert not (local / "reader_cache.sqlite").exists()  # SQLite stays off the object store:
  assert len(list((tmp_path / "scratch" / "rrpo_jax" / "reader_cache").glob("*.sqlite"))) == 1  # local scratch
  assert not (tmp_path / "gs:").exists()
  results = json.loads((local / "results.json").read_text())
  assert results["step"] == 3 and set(results["systems"]) == {"retriever", "reference", "policy"}

  killed = f"{BUCKET}/killed"
  proc = _run(tmp_path, killed, "mode=sft,rrpo", kill_after="rrpo:2")
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
  proc = _run(tmp_path, killed, "mode=sft,rrpo")
  assert proc.returncode == 0, proc.stderr[-4000:]
  for a, b in zip(leaves(_params(tmp_path, killed, 3)), leaves(_params(tmp_path, full, 3))):
    np.testing.assert_array_equal(a, b)
  rows = [json.loads(line) for line in (tmp_path / "gcs" / "bucket" / "runs" / "killed" / "metrics.jsonl").open()]
  assert [r["step"] for r in rows if r["phase"] == "rrpo"] == [1, 2, 3]

  # RRPO started from the first run's warm-up checkpoints in the bucket (rrpo.init_from=gs://...)
  # trains exactly as the run that warmed up itself.
  proc = _run(tmp_path, f"{BUCKET}/from_sft", "mode=rrpo", f"rrpo.init_from={full}/checkpoints/sft")
  assert proc.returncode == 0, proc.stderr[-4000:]
  for a, b in zip(leaves(_params(tmp_path, f"{BUCKET}/from_sft", 3)), leaves(_params(tmp_path, full, 3))):
    np.testing.assert_array_equal(a, b)
