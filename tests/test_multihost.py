"""Two simulated hosts on localhost: two processes under jax.distributed (1 CPU device each), each
with its own local scratch directory, one shared workdir, the fake reader counted request by request
(tests/harness.py). With the PostgreSQL cache on a real server (conftest.postgres_server) they train
exactly as one process with 2 devices and send each distinct prompt to the reader once between them;
with per-host SQLite caches (the default on several processes) they train the same but ask again
what the other host asked in an earlier epoch. A damaged latest checkpoint then falls back to the
step before on both hosts."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from rrpo_jax.reader.server import free_port
from rrpo_jax.train.reader_pool import CHECK_REQUEST
from test_train_smoke import ROOT, env_for, leaves, rrpo_params

# 8 training queries, 2 per step (1 per host): 4 steps an epoch, 3 epochs, the loader reshuffling
# which host sees which query every epoch; an evaluation at the end (host 0 asks the reader).
OVERRIDES = (
    "mode=sft,rrpo,eval",
    "reader.backend=fake",
    "data.max_train_queries=8",
    "sft.batch_size=2",
    "rrpo.batch_size=2",
    "rrpo.steps=12",
    "checkpoint.every_steps=4",
    "eval.batch_size=2",
)


def _cmd(workdir, *extra):
  return [
      sys.executable,
      os.path.join(ROOT, "tests", "harness.py"),
      f"--config={ROOT}/configs/smoke.py",
      f"--workdir={workdir}",
      *[f"--config.{o}" for o in OVERRIDES + extra],
  ]


def _env(devices, scratch, log):
  env = env_for(devices)
  env.update(RRPO_JAX_SCRATCH=str(scratch), RRPO_TEST_READER_LOG=str(log))
  return env


def _wait(procs, timeout=900):
  """Waits for the processes; one that hangs past `timeout` s prints its threads' stacks (SIGUSR1,
  tests/harness.py) before it is killed, and the stacks are in the failure message."""
  deadline, errors = time.monotonic() + timeout, []
  for p in procs:
    try:
      _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      for q in procs:
        if q.poll() is None:
          q.send_signal(signal.SIGUSR1)
      time.sleep(5)
      p.kill()
      _, err = p.communicate()
    errors.append(err)
  assert [p.returncode for p in procs] == [0] * len(procs), "\n----\n".join(e[-12000:] for e in errors)


def _two_hosts(tmp_path, name, *extra):
  """Runs the two processes; returns (workdir, reader requests per host as lists of lines)."""
  workdir, port = tmp_path / name, free_port()
  procs = []
  for pid in range(2):
    dist = (
        "distributed.enabled=True",
        f"distributed.coordinator_address=127.0.0.1:{port}",
        "distributed.num_processes=2",
        f"distributed.process_id={pid}",
    )
    env = _env(1, tmp_path / f"{name}_scratch{pid}", tmp_path / f"{name}_reader{pid}.log")
    procs.append(
        subprocess.Popen(
            _cmd(workdir, *dist, *extra),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
  _wait(procs)
  return workdir, [_prompts(tmp_path / f"{name}_reader{pid}.log") for pid in range(2)]


def _prompts(log):
  """The logged training and evaluation requests (the start-up reader check is asked on every host)."""
  return [line for line in log.read_text().splitlines() if CHECK_REQUEST.qid not in line]


# RRPO metrics every host's queries enter (rollout.all_hosts_diagnostics), and host 0 writes
DIAGNOSTICS = (
    "reward",
    "value",
    "reward_f1",
    "overlap@2",
    "prefix_eq_ref_frac",
    "kendall_tau",
    "reader_queries",
    "reader_prefixes",
)  # not reader_unique_requests: a host remembers the reference's rewards of the queries it met itself


def _rrpo_rows(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r for r in rows if r["phase"] == "rrpo" and "reward" in r]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes on a free 2-core machine; far longer on a shared one
def test_two_hosts_with_a_shared_cache_ask_each_prompt_once(tmp_path, postgres_url):
  one = tmp_path / "one"
  proc = subprocess.run(
      _cmd(one, f"reader.cache_path={tmp_path / 'one.sqlite'}"),
      cwd=ROOT,
      env=_env(2, tmp_path / "one_scratch", tmp_path / "one_reader.log"),
      capture_output=True,
      text=True,
      timeout=1200,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  single = _prompts(tmp_path / "one_reader.log")
  assert len(single) == len(set(single))  # one process, one cache: every prompt once

  shared, (host0, host1) = _two_hosts(tmp_path, "shared", f"reader.cache_path={postgres_url}")
  per_host, (sq0, sq1) = _two_hosts(tmp_path, "per_host")

  for workdir in (shared, per_host):  # the same training as one process with 2 devices
    for a, b in zip(leaves(rrpo_params(workdir, 12)), leaves(rrpo_params(one, 12))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "rrpo"] == list(range(1, 13))  # one writer: host 0
    # host 0's row speaks for both hosts: the diagnostics and reader counts of one 2-device process
    for r, o in zip(_rrpo_rows(workdir), _rrpo_rows(one)):
      for name in DIAGNOSTICS:
        assert r[name] == pytest.approx(o[name], rel=1e-5, abs=1e-6), (workdir.name, r["step"], name)
    assert json.loads((workdir / "results.json").read_text())["step"] == 12
    assert not (workdir / "reader_cache.sqlite").exists()
    assert {line.split()[0] for line in host0 + sq0} == {"0"} and {line.split()[0] for line in host1 + sq1} == {"1"}

  # Shared cache: the two hosts together sent exactly the prompts one process sent, each once.
  calls = lambda w: sum(r["reader_reader_calls"] for r in _rrpo_rows(w))  # noqa: E731
  assert calls(shared) == calls(one) and calls(per_host) > calls(one)
  both = [line.split(" ", 1)[1] for line in host0 + host1]
  assert sorted(both) == sorted(line.split(" ", 1)[1] for line in single)
  assert host1, "host 1 asked nothing: the run did not exercise two hosts"
  assert not any((tmp_path / f"shared_scratch{pid}").exists() for pid in range(2))  # no SQLite written

  # Per-host SQLite (in each host's own scratch directory): a query met on the other host in an
  # earlier epoch is asked again, so the same training costs more reader calls.
  for pid in range(2):
    assert len(list((tmp_path / f"per_host_scratch{pid}" / "rrpo_jax" / "reader_cache").glob("*.sqlite"))) == 1
  again = Counter(line.split(" ", 1)[1] for line in sq0 + sq1)
  assert set(again) == set(both) and sum(again.values()) > len(both)

  # Checkpoint fallback on two processes: the latest RRPO step damaged, both hosts restore the step
  # before (host 0 sets the damaged one aside, host 1 waits for it), redo steps 9-12 and end where
  # one process does.
  latest = per_host / "checkpoints" / "rrpo" / "12"
  for f in glob.glob(f"{latest}/state/**/d/*", recursive=True):
    with open(f, "r+b") as fh:
      fh.truncate(7)
  _two_hosts(tmp_path, "per_host")
  assert (per_host / "checkpoints" / "rrpo" / "12.damaged").is_dir()
  for a, b in zip(leaves(rrpo_params(per_host, 12)), leaves(rrpo_params(one, 12))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  rows = [json.loads(line) for line in (per_host / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["phase"] == "rrpo"] == list(range(1, 13))
