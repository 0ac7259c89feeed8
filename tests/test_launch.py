"""launch/: the scripts parse, their --dry_run prints the exact per-worker commands, those commands
parse into the intended config, and local.sh runs the entry point end to end."""

import os
import shlex
import subprocess

import pytest
from absl import flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = [
    "local.sh",
    "tpu_pod.sh",
    "slurm_gpu.sbatch",
    "reader_vllm.sh",
    "nq_crossfit_queue.sh",
    "hotpotqa_crossfit_queue.sh",
    "crossfit_queue_lib.sh",
]


def bash(*args, env=None):
  return subprocess.run(
      ["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
  )


def parse_main_args(argv):
  """The config main.py would build from `python -m rrpo_jax.main ARGV...` (absl + ml_collections)."""
  argv = ["main"] + [a.replace("--config=configs/", f"--config={ROOT}/configs/", 1) for a in argv]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=argv)
  flags.DEFINE_string("workdir", None, "", flag_values=fv)
  fv(argv)
  return fv.config, fv.workdir


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script):
  proc = bash("-n", f"launch/{script}")
  assert proc.returncode == 0, proc.stderr


def test_tpu_pod_dry_run_prints_the_worker_command():
  proc = bash(
      "launch/tpu_pod.sh",
      "--dry_run",
      "my-v4-32",
      "us-central2-b",
      "configs/nq.py:paper",
      "gs://bucket/runs/nq",
      "--config.reader.base_url=http://reader-host:8000/v1",
      "--config.rrpo.steps=5",
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("gcloud compute tpus tpu-vm ssh my-v4-32 --zone=us-central2-b --worker=all")
  assert lines[1] == "environment (every worker): TOKENIZERS_PARALLELISM=false"
  cmd = shlex.split(lines[2].split("every worker runs: ", 1)[1])
  assert cmd[:3] == ["cd", "~/rrpo_jax", "&&"] and cmd[3:7] == [
      "TOKENIZERS_PARALLELISM=false",
      "python",
      "-m",
      "rrpo_jax.main",
  ]
  config, workdir = parse_main_args(cmd[7:])
  assert workdir == "gs://bucket/runs/nq" and config.distributed.enabled
  assert config.rrpo.steps == 5 and config.reader.base_url == "http://reader-host:8000/v1"
  assert config.data.num_candidates == 100  # the :paper variant


def test_slurm_dry_run_prints_every_rank():
  proc = bash(
      "launch/slurm_gpu.sbatch",
      "--dry_run",
      "configs/hotpotqa.py:paper",
      "/shared/runs/h",
      "--config.rrpo.batch_size=64",
      env={"SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "4"},
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("srun --gpus-per-task=1 --gpu-bind=single:1 ")
  ranks = [line for line in lines if line.startswith("rank ")]
  assert len(ranks) == 8 and ranks[5].startswith("rank 5 of 8: node 1, GPU 1")
  for line in (lines[0].split("single:1 ", 1)[1], ranks[5].split("GPU): ", 1)[1]):
    cmd = shlex.split(line)
    assert cmd[:3] == ["python", "-m", "rrpo_jax.main"]
    config, workdir = parse_main_args(cmd[3:])
    assert workdir == "/shared/runs/h" and config.distributed.enabled and config.rrpo.batch_size == 64
    assert config.eval.k == 3 and config.data.num_candidates == 100  # hotpotqa :paper
  assert "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9" in lines[1]


def _queue(tmp_path, script):
  """Runs launch/<script> in tmp_path with a stand-in `python` that logs each command and succeeds
  without running it; returns (process, logged commands)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  (bin_dir / "python").write_text('#!/usr/bin/env bash\necho "$@" >> "$PWD/calls.log"\n')
  (bin_dir / "python").chmod(0o755)
  (tmp_path / "runs" / "exp").mkdir(parents=True, exist_ok=True)
  (tmp_path / "calls.log").write_text("")
  proc = subprocess.run(
      ["bash", os.path.join(ROOT, "launch", script)],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      timeout=60,
      env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
  )
  return proc, (tmp_path / "calls.log").read_text().splitlines()


def _workdirs(calls):
  return [c.split("--workdir=runs/exp/")[1] for c in calls if "--workdir=" in c]


def test_nq_queue_runs_its_stages_in_order(tmp_path):
  """The pilot, both learnability checks and their val evaluations, the rule, then the report runs
  with the reward the rule wrote (none here: the stand-in writes no choice, so the paper's)."""
  proc, calls = _queue(tmp_path, "nq_crossfit_queue.sh")
  assert proc.returncode == 0, proc.stderr
  assert _workdirs(calls) == [
      "nq_cf_pilot_sft_has_answer_f0",
      "nq_cf_learn",
      "nq_cf_learn_ll",
      "nq_cf_learn",
      "nq_cf_learn_ll",
      "nq_cf_sft_has_answer_f0",
      "nq_cf_sft_has_answer_f1",
      *[f"nq_cf_rrpo_s{s}_f{f}" for s in (0, 1) for f in (0, 1)],
      *[f"nq_cf_rrpo_s{s}_f{f}" for s in (0, 1) for f in (0, 1)],  # transfer, the same checkpoints
      "nq_cf_sft_reader_f0",
      "nq_cf_sft_reader_f1",
  ]
  rule = [c for c in calls if "crossfit_reward_rule.py" in c]
  assert rule == [c for c in calls if "--workdir=" not in c] and calls.index(rule[0]) == 5  # after the val evals
  assert "--config.eval.name=val" in calls[3] and "learn,reward=ll " in calls[4]


def test_hotpotqa_queue_takes_nq_s_reward_and_runs_stages_in_order(tmp_path):
  """Without the NQ rule's choice it stops naming the file; with it, the reward is copied and the
  stages run in order."""
  proc, calls = _queue(tmp_path, "hotpotqa_crossfit_queue.sh")
  assert proc.returncode == 1 and "runs/exp/nq_cf_reward_choice.json: missing" in proc.stderr and not calls
  (tmp_path / "runs" / "exp" / "nq_cf_reward_choice.json").write_text('{\n "reward": "ll"\n}\n')
  proc, calls = _queue(tmp_path, "hotpotqa_crossfit_queue.sh")
  assert proc.returncode == 0, proc.stderr
  assert (tmp_path / "runs" / "exp" / "hotpotqa_cf_reward_choice.json").read_text().startswith('{\n "reward": "ll"')
  assert _workdirs(calls) == [
      "hotpotqa_cf_sft_is_supporting_f0",
      "hotpotqa_cf_sft_is_supporting_f1",
      *[f"hotpotqa_cf_rrpo_s{s}_f{f}_ll" for s in (0, 1) for f in (0, 1)],
      *[f"hotpotqa_cf_rrpo_s{s}_f{f}_ll" for s in (0, 1) for f in (0, 1)],  # transfer, the same checkpoints
      "hotpotqa_cf_sft_reader_f0",
      "hotpotqa_cf_sft_reader_f1",
  ]
  assert "hotpotqa_crossfit.py:rrpo,fold=1,seed=0,reward=ll " in calls[3]
  assert calls[6].split()[2].endswith("hotpotqa_crossfit.py:rrpo,fold=0,seed=0,reward=ll,transfer")
  assert all(c.startswith("-m rrpo_jax.main ") for c in calls)


@pytest.mark.slow  # a run of the entry point through the script: 70 s on a busy 2-core machine
def test_local_sh_runs_the_entry_point(tmp_path):
  """launch/local.sh end to end on the smoke config: warm-up, RRPO, evaluation and export, one step
  each, with the fake reader (no model to load) on one device."""
  workdir = tmp_path / "run"
  proc = bash(
      "launch/local.sh",
      "configs/smoke.py",
      str(workdir),
      "--config.mode=sft,rrpo,eval,export",
      "--config.reader.backend=fake",
      "--config.sft.steps=1",
      "--config.rrpo.steps=1",
      "--config.sft.batch_size=1",
      "--config.rrpo.batch_size=1",
      "--config.eval.batch_size=1",
      env={"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"},
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "evaluation (step 1)" in proc.stdout and "exported rrpo step 1" in proc.stdout
  for name in ("config.json", "metrics.jsonl", "results.json", "plots.png", "reader_cache.sqlite"):
    assert (workdir / name).is_file(), name
  assert (workdir / "checkpoints" / "rrpo" / "1").is_dir() and (workdir / "export" / "model.safetensors").is_file()
