"""The real entry point on configs/smoke.py: sft -> rrpo -> eval -> export, then kill-and-resume.

Runs `python -m rrpo_jax.main` in subprocesses with 2 fake CPU devices and a real SmolLM2 reader
(llama.cpp, a few tokens per answer). The smoke run's SQLite response cache is reused by the later
runs (test_multiprocess.py too), so they make few or no new reader calls.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_for(devices: int) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def main_cmd(workdir, *overrides, config="configs/smoke.py"):
  return [
      sys.executable,
      "-m",
      "rrpo_jax.main",
      f"--config={config}",
      f"--workdir={workdir}",
      *[f"--config.{o}" for o in overrides],
  ]


def run_main(workdir, *overrides, devices=2, timeout=600):
  start = time.perf_counter()
  proc = subprocess.run(
      main_cmd(workdir, *overrides), cwd=ROOT, env=env_for(devices), capture_output=True, text=True, timeout=timeout
  )
  return proc, time.perf_counter() - start


def smoke_run(tmp_path_factory):
  """The full smoke run (once per session): (workdir, reader cache path, seconds)."""
  base = tmp_path_factory.getbasetemp() / "smoke"
  done = base / "done.json"
  if not done.exists():
    base.mkdir(exist_ok=True)
    workdir, cache = base / "run", base / "reader_cache.sqlite"
    proc, seconds = run_main(workdir, "mode=sft,rrpo,eval,export", f"reader.cache_path={cache}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    (base / "stdout.txt").write_text(proc.stdout)
    done.write_text(json.dumps({"seconds": seconds}))
  seconds = json.loads(done.read_text())["seconds"]
  return base / "run", base / "reader_cache.sqlite", seconds


def rrpo_params(workdir, step=None):
  from rrpo_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel

  ck = ckpt_lib.Checkpointer(str(workdir / "checkpoints" / "rrpo"), keep=10, async_save=False)
  params = ck.restore_params(step)
  ck.close()
  return params


def leaves(tree):
  import jax  # pylint: disable=import-outside-toplevel

  return jax.tree.leaves(tree)


@pytest.mark.slow  # a subprocess run of the entry point with a real reader: 179 s on a busy 2-core machine
def test_smoke_end_to_end(tmp_path_factory):
  workdir, cache, seconds = smoke_run(tmp_path_factory)
  # Wall time is reported, not asserted: shared CI machines are too noisy for absolute times.
  print(f"smoke sft -> rrpo -> eval -> export: {seconds:.1f} s")
  stdout = (workdir.parent / "stdout.txt").read_text()
  assert "evaluation (step 2)" in stdout and "policy" in stdout and "exported rrpo step 2" in stdout
  results = json.loads((workdir / "results.json").read_text())
  assert set(results["systems"]) == {"retriever", "reference", "policy"}
  for system in results["systems"].values():
    for metric in ("em", "f1", "recall", "ndcg", "mrr"):
      assert 0.0 <= system[metric] <= 100.0
  eval_dir = workdir / "eval" / "step_2"
  for name in ("results.json", "policy.dpr.jsonl", "policy.trec", "reference.trec"):
    assert (eval_dir / name).exists(), name
  trec = (eval_dir / "policy.trec").read_text().splitlines()
  assert trec and len(trec[0].split()) == 6 and trec[0].split()[3] == "1"
  dpr = [json.loads(line) for line in (eval_dir / "policy.dpr.jsonl").read_text().splitlines()]
  assert len(dpr) == 4 and all(len(r["ctxs"]) == 4 for r in dpr)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  phases = {r["phase"] for r in rows}
  assert phases == {"sft", "rrpo", "eval"}
  rrpo = [r for r in rows if r["phase"] == "rrpo"]
  assert [r["step"] for r in rrpo] == [1, 2]
  for key in (
      "reward_t1",
      "value_t2",
      "adv_mean",
      "zero_adv_frac",
      "clip_frac",
      "kl",
      "entropy",
      "overlap@2",
      "kendall_tau",
      "reader_reader_calls",
      "reader_cache_hit_rate",
      "time_reader",
      "time_update",
  ):
    assert key in rrpo[0], key
  assert (workdir / "config.json").exists() and (workdir / "plots.png").exists()
  assert any(name.startswith("events") for name in os.listdir(workdir / "tb"))
  export = workdir / "export"
  assert (export / "config.json").exists() and (export / "model.safetensors").exists()
  from rrpo_jax.models.reranker import Reranker  # pylint: disable=import-outside-toplevel

  reranker = Reranker.from_pretrained(str(export))
  for a, b in zip(leaves(reranker.params), leaves(rrpo_params(workdir, 2))):
    np.testing.assert_array_equal(np.asarray(a), b)  # `best` is the latest here: no eval during RRPO


@pytest.mark.slow  # two more runs after the smoke run: 85 s
def test_kill_and_resume_is_bit_exact(tmp_path_factory, tmp_path):
  """SIGKILL mid-RRPO, resume: the final params equal an uninterrupted run's bit for bit."""
  _, smoke_cache, _ = smoke_run(tmp_path_factory)
  cache = tmp_path / "reader_cache.sqlite"
  shutil.copy(smoke_cache, cache)
  overrides = ("mode=sft,rrpo", "rrpo.steps=4", f"reader.cache_path={cache}")
  killed = tmp_path / "killed"
  proc = subprocess.Popen(
      main_cmd(killed, *overrides),
      cwd=ROOT,
      env=env_for(2),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  ckpt_dir = killed / "checkpoints" / "rrpo"
  deadline = time.time() + 600
  try:
    while time.time() < deadline and proc.poll() is None:
      if ckpt_dir.is_dir() and any(name.isdigit() and int(name) >= 2 for name in os.listdir(ckpt_dir)):
        break  # steps 3-4 need new reader calls: the run is busy for a while yet
      time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  saved = sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
  assert saved and saved[-1] < 4
  resumed, _ = run_main(killed, *overrides)
  assert resumed.returncode == 0, resumed.stderr[-4000:]
  # the uninterrupted run reads every answer from the same cache, so both runs saw the same rewards
  straight = tmp_path / "straight"
  shutil.copy(cache, tmp_path / "straight_cache.sqlite")
  clean, _ = run_main(straight, *overrides[:-1], f"reader.cache_path={tmp_path / 'straight_cache.sqlite'}")
  assert clean.returncode == 0, clean.stderr[-4000:]
  for a, b in zip(leaves(rrpo_params(killed, 4)), leaves(rrpo_params(straight, 4))):
    np.testing.assert_array_equal(a, b)
  rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["phase"] == "rrpo"] == [1, 2, 3, 4]  # no duplicated steps after resume
