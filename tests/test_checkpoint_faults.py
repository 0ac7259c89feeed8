"""Checkpoints under faults: damaged steps (a clear error, or checkpoint.fallback to the step before),
a checkpoint of another model (never taken for damage), what a kill during an asynchronous write
leaves (never restored, removed at the next start), and a write that fails (disk full)."""

import glob
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from rrpo_jax.train import checkpoint as ckpt_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _state(step):
  rng = np.random.default_rng(step)
  return {"w": rng.standard_normal((64, 8)).astype(np.float32), "step": np.array(step, np.int32)}


def _target():
  return {"w": np.zeros((64, 8), np.float32), "step": np.array(0, np.int32)}


def _saved(directory, steps=(1, 2, 3), keep=3):
  ck = ckpt_lib.Checkpointer(str(directory), keep=keep, async_save=False)
  for s in steps:
    ck.save(s, _state(s), {"step": s})
  ck.close()


def _truncate_arrays(d):
  for f in glob.glob(f"{d}/state/**/d/*", recursive=True):
    with open(f, "r+b") as fh:
      fh.truncate(7)


DAMAGE = {
    "truncated array files": _truncate_arrays,
    "array files deleted": lambda d: [os.remove(f) for f in glob.glob(f"{d}/state/**/d/*", recursive=True)],
    "JSON item garbled": lambda d: open(f"{d}/extra/metadata", "w", encoding="utf-8").write("{not json"),
    "state item missing": lambda d: shutil.rmtree(f"{d}/state"),
    "empty step folder": lambda d: [shutil.rmtree(d), os.mkdir(d)],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_step_is_named_or_falls_back(tmp_path, damage):
  d = tmp_path / "rrpo"
  _saved(d)
  DAMAGE[damage](str(d / "3"))
  strict = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False)
  with pytest.raises(ckpt_lib.CheckpointError) as info:
    strict.restore(_target())
  message = str(info.value)
  assert f"checkpoint step 3 in {d} is damaged" in message and "checkpoint.fallback=True" in message
  assert "\n" not in message
  strict.close()
  assert ckpt_lib.saved_steps(str(d)) == [1, 2, 3]  # nothing moved without the option

  ck = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False, fallback=True)
  state, extra, step = ck.restore(_target())
  assert step == 2 and extra == {"step": 2}
  np.testing.assert_array_equal(state["w"], _state(2)["w"])
  assert ckpt_lib.saved_steps(str(d)) == [1, 2] and (d / "3.damaged").is_dir()  # set aside, not deleted
  assert ck.latest_step() == 2
  ck.save(3, _state(3), {"step": 3})  # training writes step 3 again
  ck.close()
  again = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False)
  state, _, step = again.restore(_target())
  assert step == 3
  np.testing.assert_array_equal(state["w"], _state(3)["w"])
  again.close()


def test_a_named_step_never_falls_back_and_params_reads_say_which_step(tmp_path):
  d = tmp_path / "c"
  _saved(d, steps=(1, 2))
  _truncate_arrays(str(d / "2"))
  ck = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False, fallback=True)
  with pytest.raises(ckpt_lib.CheckpointError, match=r"step 2 .* is damaged .*: move .*/2 aside$"):
    ck.restore(_target(), step=2)  # eval / export name their step: an error, not another step
  with pytest.raises(ckpt_lib.CheckpointError):
    ck.restore_params(2)
  assert ckpt_lib.saved_steps(str(d)) == [1, 2]
  # params-only reads (sft's completeness check, init-from) fall back like restore
  params_tree = {"params": _state(1)}
  ck2 = ckpt_lib.Checkpointer(str(tmp_path / "p"), keep=3, async_save=False, fallback=True)
  ck2.save(1, params_tree, {})
  ck2.save(2, {"params": _state(2)}, {})
  _truncate_arrays(str(tmp_path / "p" / "2"))
  params, step = ck2.read_params()
  assert step == 1
  np.testing.assert_array_equal(params["w"], _state(1)["w"])
  ck.close()
  ck2.close()


def test_every_step_damaged_moves_nothing(tmp_path):
  d = tmp_path / "c"
  _saved(d, steps=(1, 2))
  for s in (1, 2):
    _truncate_arrays(str(d / str(s)))
  ck = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False, fallback=True)
  with pytest.raises(ckpt_lib.CheckpointError, match=r"can be read: steps \[2, 1\] are all damaged"):
    ck.restore(_target())
  assert ckpt_lib.saved_steps(str(d)) == [1, 2]
  ck.close()


def test_another_models_checkpoint_is_a_mismatch_not_damage(tmp_path):
  d = tmp_path / "c"
  _saved(d, steps=(1, 2))
  ck = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False, fallback=True)
  other = {"v": np.zeros((64, 8), np.float32), "step": np.array(0, np.int32)}  # another model's parameter names
  with pytest.raises(ckpt_lib.CheckpointError, match="does not fit this run .*another model or config"):
    ck.restore(other)
  assert ckpt_lib.saved_steps(str(d)) == [1, 2] and not list(d.glob("*.damaged"))
  ck.close()


_KILL_DURING_ASYNC_WRITE = """
import os, signal, sys
import numpy as np
from rrpo_jax.train import checkpoint as ckpt_lib
ck = ckpt_lib.Checkpointer(sys.argv[1], keep=3, async_save=True)
ck.save(1, {"w": np.ones((8,), np.float32)}, {"step": 1})
ck.wait()
big = np.random.default_rng(0).standard_normal((4_000_000,)).astype(np.float32)  # 16 MB: written in the background
ck.save(2, {"w": big}, {"step": 2})
print(sorted(os.listdir(sys.argv[1])), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_during_an_asynchronous_write_is_never_restored(tmp_path):
  d = tmp_path / "c"
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-c", _KILL_DURING_ASYNC_WRITE, str(d)], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  left = sorted(os.listdir(d))
  assert "1" in left and "2" not in left, left  # step 2 was still being written
  assert any(name.startswith("2.orbax-checkpoint-tmp") for name in left), left
  ck = ckpt_lib.Checkpointer(str(d), keep=3, async_save=False, fallback=True)
  assert ck.all_steps() == [1]
  state, extra, step = ck.restore({"w": np.zeros((8,), np.float32)})
  assert step == 1 and extra == {"step": 1} and state["w"].tolist() == [1.0] * 8
  ck.close()
  assert sorted(os.listdir(d)) == ["1"]  # the half-written folder was removed at the start


def test_another_runs_directory_read_only_is_left_as_it_is(tmp_path):
  """rrpo.init_from opens another run's checkpoints read-only: a step folder that run is still
  writing stays (a writable Checkpointer removes it when it opens), and nothing can be saved."""
  d = tmp_path / "c"
  _saved(d, steps=(1, 2))
  (d / "3.orbax-checkpoint-tmp-0").mkdir()  # the other run is writing step 3
  ck = ckpt_lib.Checkpointer(str(d), keep=1, async_save=False, read_only=True)
  assert ck.all_steps() == [1, 2]
  state, extra, step = ck.restore(_target())
  assert step == 2 and extra == {"step": 2} and np.array_equal(state["w"], _state(2)["w"])
  with pytest.raises(ckpt_lib.CheckpointError, match="opened read-only"):
    ck.save(4, _state(4), {"step": 4})
  ck.close()
  assert sorted(os.listdir(d)) == ["1", "2", "3.orbax-checkpoint-tmp-0"]
  ckpt_lib.Checkpointer(str(d), keep=3, async_save=False).close()
  assert sorted(os.listdir(d)) == ["1", "2"]


def test_a_failed_write_names_the_directory_and_keeps_what_was_saved(tmp_path, capfd):
  """A real write error from the kernel (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) in
  orbax's background thread: one CheckpointError, the saved step intact, no traceback printed."""
  d = tmp_path / "c"
  ck = ckpt_lib.Checkpointer(str(d), keep=1, async_save=True)
  ck.save(1, _state(1), {"step": 1})
  ck.wait()
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  big = {"w": np.random.default_rng(0).standard_normal((500_000,)).astype(np.float32), "step": np.array(2, np.int32)}
  resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
  try:
    with pytest.raises(ckpt_lib.CheckpointError) as info:
      ck.save(2, big, {"step": 2})
      ck.wait()
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
  message = str(info.value)
  assert message.startswith(f"writing a checkpoint in {d} failed: ValueError:") and "\n" not in message
  assert "(the file cannot grow: the disk is full" in message and message.endswith("intact: [1]")
  try:
    ck.close()
  except ckpt_lib.CheckpointError:
    pass
  assert "Traceback" not in capfd.readouterr().err
  again = ckpt_lib.Checkpointer(str(d), keep=1, async_save=False)
  state, _, step = again.restore(_target())
  assert step == 1
  np.testing.assert_array_equal(state["w"], _state(1)["w"])
  again.close()


@pytest.mark.parametrize("damage", ["truncated weights", "no weights", "garbled config.json", "config.json a list"])
def test_a_damaged_exported_model_is_one_error_naming_the_file(tmp_path, damage):
  """An exported HF directory (model.init / rrpo.init_from) with a damaged file: CheckpointError
  naming the directory and the file; the intact directory loads to the same params."""
  from configs import smoke  # pylint: disable=import-outside-toplevel

  from rrpo_jax.train import restore  # pylint: disable=import-outside-toplevel

  config = smoke.get_config()
  saved = restore.build_reranker(config)
  export = tmp_path / "export"
  saved.save_pretrained(str(export))
  config.model.init = str(export)
  np.testing.assert_array_equal(
      restore.build_reranker(config).params["classifier"]["kernel"], saved.params["classifier"]["kernel"]
  )

  weights, cfg = export / "model.safetensors", export / "config.json"
  if damage == "truncated weights":
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    named = str(weights)
  elif damage == "no weights":
    weights.unlink()
    named = "no model.safetensors"
  elif damage == "garbled config.json":
    cut = cfg.read_text()[:40]
    cfg.write_text(cut)
    named = f"{cfg}: line {cut.count(chr(10)) + 1}: not JSON"
  else:
    cfg.write_text("[1, 2]")
    named = f"{cfg}: expected a JSON object"
  with pytest.raises(ckpt_lib.CheckpointError) as e:
    restore.build_reranker(config)
  message = str(e.value)
  assert message.startswith(f"the model directory {export} cannot be loaded") and named in message, message
  assert "\n" not in message
