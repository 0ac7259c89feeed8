"""Two processes on localhost (jax.distributed, 1 CPU device each) give the same training as one
process with 2 devices: the smoke run's sft -> rrpo, reading the smoke run's reader cache."""

import shutil
import socket
import subprocess

import numpy as np
import pytest

from test_train_smoke import ROOT, env_for, leaves, main_cmd, rrpo_params, smoke_run


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # the smoke run and two processes of the entry point: 133 s on a busy 2-core machine
def test_two_processes_match_one_process(tmp_path_factory, tmp_path):
  smoke_dir, smoke_cache, _ = smoke_run(tmp_path_factory)
  cache = tmp_path / "reader_cache.sqlite"
  shutil.copy(smoke_cache, cache)
  workdir, port = tmp_path / "run", _free_port()
  procs = []
  for pid in range(2):
    cmd = main_cmd(
        workdir,
        "mode=sft,rrpo",
        f"reader.cache_path={cache}",
        "distributed.enabled=True",
        f"distributed.coordinator_address=127.0.0.1:{port}",
        "distributed.num_processes=2",
        f"distributed.process_id={pid}",
    )
    procs.append(
        subprocess.Popen(cmd, cwd=ROOT, env=env_for(1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    )
  errors = []
  for p in procs:
    try:
      _, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
      p.kill()
      _, err = p.communicate()
    errors.append(err)
  assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(e[-3000:] for e in errors)
  one, two = rrpo_params(smoke_dir, 2), rrpo_params(workdir, 2)
  # same data, dropout keys and rewards; only the cross-process summation order may differ
  for a, b in zip(leaves(two), leaves(one)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert (workdir / "metrics.jsonl").exists()  # written by process 0
