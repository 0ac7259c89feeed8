"""Kill, disk-full and damage faults over a whole run (sft -> rrpo with periodic evaluations -> eval),
each followed by a rerun of the same command: the run that survived them ends with the same sft and
RRPO parameters (bit for bit), the same metrics.jsonl rows and the same results as an uninterrupted one.

Faults are injected at named points (rrpo_jax/train/faults.py, RRPO_JAX_FAULT): SIGKILL of the process,
a disk that stops taking writes (RLIMIT_FSIZE 0: EFBIG on every write that grows a file), and a
damaged latest checkpoint (its array files truncated between two runs). One workdir takes the
faults one after another, so each rerun resumes from what the faults before it left. The fake reader
(no model) keeps every process short; a persistent XLA compilation cache (for the tests only) keeps
the reruns from compiling again.

CI runs the "ci" profile (4 kills); RRPO_JAX_FAULTS=long runs all of them (14: 12 kill points, a
full disk, a damaged checkpoint); RRPO_JAX_FAULT_STATS=<file> writes the counts for docs/reliability.md.
"""

import glob
import json
import os
import resource
import signal
import subprocess

import numpy as np
import pytest

from test_train_smoke import ROOT, env_for, leaves, main_cmd

OVERRIDES = (
    "mode=sft,rrpo,eval",
    "reader.backend=fake",
    "sft.batch_size=1",
    "rrpo.batch_size=1",
    "eval.batch_size=1",
    "rrpo.steps=4",
    "eval.every_steps=2",  # periodic evaluations at RRPO steps 2 and 4
    "eval.resamples=200",
    "progress=False",
)

# (what, argument, phase it hits). kill / full: an RRPO_JAX_FAULT spec for one run; damage: truncate
# the array files of the latest checkpoint of a phase before the next run. The phase loop's points
# name their step; the reader's count hits in the process, and "during" is reached only by calls
# with answers to compute (not all cached). A kill can land before the previous run's last
# asynchronous write was finalised: the next run then resumes from further back.
LONG = (
    ("kill", "sft.step.2", "sft"),  # sft step 2 computed, not logged
    ("kill", "sft.saving.3", "sft"),  # while step 3's checkpoint is written
    ("kill", "sft.logged.4", "sft"),  # step 4's row written, its checkpoint not
    ("kill", "rrpo.reader.before@1", "rrpo"),  # sft done; rrpo step 1 before the reader
    ("kill", "rrpo.saving.1", "rrpo"),  # rrpo step 1's row written, its first checkpoint half-written
    (
        "kill",
        "rrpo.reader.during@1",
        "rrpo",
    ),  # from scratch again (step 1's answers cached): step 2's computed, not cached
    ("kill", "rrpo.reader.after@1", "rrpo"),  # the next step's answers cached, no update yet
    ("kill", "eval.reader.during@1", "eval"),  # inside step 2's periodic evaluation: answers not cached
    ("kill", "rrpo.evaluated.2", "eval"),  # step 2's periodic evaluation done, its checkpoint not saved
    ("full", "rrpo.step.2", "rrpo"),  # the disk fills after step 2's update: its row cannot be written
    ("kill", "rrpo.saving.3", "rrpo"),  # 2 saved, killed while 3 is written
    ("damage", "rrpo", "rrpo"),  # the latest rrpo checkpoint (2) is damaged: fallback to 1
    ("kill", "rrpo.step.4", "rrpo"),  # steps 2 to 4 again, killed after 4's update
    ("kill", "eval.done@1", "eval"),  # the eval mode finished: its results and row are written
)
# CI: asynchronous checkpoint writes of both phases (the second one before any rrpo checkpoint: rrpo
# starts from scratch with step 1's row already written), the reader step, after the evaluation
CI = (("kill", "sft.saving.2", "sft"), LONG[4], LONG[5], LONG[13])

PROFILE = os.environ.get("RRPO_JAX_FAULTS", "ci")
VOLATILE_READER = (
    "unique_requests",
    "value_memo_hits",
    "cache_hits",
    "cache_misses",
    "cache_hit_rate",
    "reader_calls",
    "reader_calls_per_query",
    "saved_frac",
    "prompt_tokens",
    "completion_tokens",
    "reader_seconds",
    "truncated",
)


def stable(row: dict) -> dict:
  """A metrics row without wall-clock times and the reader's call accounting (a resumed run finds
  answers in the cache that an uninterrupted one had to ask for)."""
  out = {}
  for key, value in row.items():
    if key == "time" or key.startswith("time_") or key == "step_seconds":
      continue
    if key.startswith("reader_") and key[len("reader_") :] in VOLATILE_READER:
      continue
    out[key] = value
  return out


def _env(cache_dir, fault=None):
  env = env_for(1)
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
  env.pop("RRPO_JAX_FAULT", None)
  if fault:
    env["RRPO_JAX_FAULT"] = fault
  return env


def _run(workdir, cache_dir, fault=None):
  proc = subprocess.run(
      main_cmd(workdir, *OVERRIDES),
      cwd=ROOT,
      env=_env(cache_dir, fault),
      capture_output=True,
      text=True,
      timeout=900,
  )
  return proc


def _params(workdir, phase, step):
  from rrpo_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel

  ck = ckpt_lib.Checkpointer(str(workdir / "checkpoints" / phase), keep=10, async_save=False)
  params = ck.restore_params(step)
  ck.close()
  return params


def _rows(workdir):
  return [stable(json.loads(line)) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
  """An uninterrupted run (it also fills the compilation cache the faulted runs share)."""
  base = tmp_path_factory.mktemp("faults")
  cache_dir = base / "xla_cache"
  proc = _run(base / "clean", cache_dir)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return base / "clean", cache_dir


def _damage_latest(workdir, phase) -> int:
  d = workdir / "checkpoints" / phase
  step = max(int(n) for n in os.listdir(d) if n.isdigit())
  files = glob.glob(f"{d}/{step}/state/**/d/*", recursive=True)
  assert files
  for f in files:
    with open(f, "r+b") as fh:
      fh.truncate(7)
  return step


@pytest.mark.slow  # about 100 s of CPU: an uninterrupted run and 5 short ones
def test_every_fault_resumes_to_the_uninterrupted_result(clean, tmp_path):
  straight, cache_dir = clean
  workdir = tmp_path / "faulted"
  plan = LONG if PROFILE == "long" else CI
  survived, tmp_folders, by_kind = 0, 0, {}
  for kind, arg, phase in plan:
    by_kind.setdefault(kind, [0, 0])[0] += 1
    if kind == "damage":
      step = _damage_latest(workdir, arg)
      by_kind[kind][1] += 1
      continue
    proc = _run(workdir, cache_dir, fault=f"{arg}={kind}")
    saved = {
        p: sorted(int(n) for n in os.listdir(workdir / "checkpoints" / p) if n.isdigit())
        for p in ("sft", "rrpo")
        if (workdir / "checkpoints" / p).is_dir()
    }
    print(f"{kind} at {arg}: exit {proc.returncode}; checkpoints {saved}", flush=True)
    assert f"rrpo_jax fault: {kind} at {arg}" in proc.stderr, (arg, proc.returncode, proc.stderr[-3000:])
    if kind == "kill":
      assert proc.returncode == -signal.SIGKILL, (arg, proc.stderr[-3000:])
      if ".saving." in arg:
        left = os.listdir(workdir / "checkpoints" / phase)
        tmp_folders += sum(".orbax-checkpoint-tmp" in n for n in left)
    else:  # the disk is full: one clear line, exit status 1
      assert proc.returncode == 1, proc.stderr[-3000:]
      assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
      last = proc.stderr.strip().splitlines()[-1]
      assert last.startswith("rrpo_jax: WorkdirError: a write for the run in"), last
      steps = sorted(int(n) for n in os.listdir(workdir / "checkpoints" / "rrpo") if n.isdigit())
      assert "File too large" in last and f"rrpo steps {steps}" in last, last
    by_kind[kind][1] += 1
  final = _run(workdir, cache_dir)
  assert final.returncode == 0, final.stderr[-4000:]
  if any(kind == "damage" for kind, _, _ in plan):
    assert glob.glob(str(workdir / "checkpoints" / "rrpo" / "*.damaged"))
  for phase, step in (("sft", 4), ("rrpo", 4)):
    for a, b in zip(leaves(_params(workdir, phase, step)), leaves(_params(straight, phase, step)), strict=True):
      np.testing.assert_array_equal(a, b)
  assert _rows(workdir) == _rows(straight)
  got, want = (json.loads((w / "results.json").read_text()) for w in (workdir, straight))
  assert got["systems"] == want["systems"] and got["comparisons"] == want["comparisons"]
  survived = sum(v[1] for v in by_kind.values())
  if PROFILE == "ci":
    assert tmp_folders >= 2  # both kills did land during an asynchronous write
  stats = os.environ.get("RRPO_JAX_FAULT_STATS")
  if stats:
    with open(stats, "w", encoding="utf-8") as f:
      json.dump({"profile": PROFILE, "faults": by_kind, "survived": survived, "tmp_folders": tmp_folders}, f)
  print(f"faults survived {survived}/{len(plan)} by kind {by_kind}; half-written checkpoint folders {tmp_folders}")


def test_a_workdir_that_cannot_be_created_or_written_stops_at_once(tmp_path):
  """At the start: a workdir under a regular file, and a disk that is full (RLIMIT_FSIZE 0)."""
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  proc = subprocess.run(
      main_cmd(blocker / "run", *OVERRIDES), cwd=ROOT, env=env_for(1), capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"rrpo_jax: WorkdirError: a write for the run in {blocker / 'run'} failed: NotADirectoryError")
  assert "a file stands where a directory should be" in last and "checkpoints: none yet" in last

  workdir = tmp_path / "full"
  workdir.mkdir()

  def full_disk():  # from the start no file can grow: every write fails as on a full disk (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

  proc = subprocess.run(
      main_cmd(workdir, *OVERRIDES),
      cwd=ROOT,
      env=env_for(1),
      capture_output=True,
      text=True,
      timeout=600,
      preexec_fn=full_disk,
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"rrpo_jax: WorkdirError: a write for the run in {workdir} failed"), last
  assert "(the file cannot grow: the disk is full" in last and "checkpoints: none yet" in last, last
  assert not (workdir / "checkpoints").exists()
