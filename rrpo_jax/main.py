"""Entry point: `python -m rrpo_jax.main --config=configs/nq.py --workdir=runs/nq [--config.x=y ...]`.

Parses flags, sets the process's malloc policy (rrpo_jax/malloc.py, RRPO_JAX_MALLOC), starts
jax.distributed when the config asks for it, and calls trainer.train_and_evaluate(config, workdir).
Known failures (bad config, bad data, reader down, non-finite loss, a bad RRPO_JAX_MALLOC) end with
a one-paragraph message and exit status 1, without a traceback.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from rrpo_jax import malloc

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with an argument: configs/nq.py or configs/nq.py:paper.", lock_config=True
)
flags.DEFINE_string(
    "workdir",
    None,
    "Directory for checkpoints, metrics, reader cache and results " "(default: runs/<config name>[_<variant>]).",
)
flags.mark_flags_as_required(["config"])


def default_workdir(config_arg: str) -> str:
  """runs/nq for configs/nq.py, runs/nq_paper for configs/nq.py:paper."""
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join("runs", f"{name}_{variant}" if variant else name)


def init_distributed(dist):
  """Calls jax.distributed.initialize per config.distributed (before any other JAX call)."""
  if not dist.enabled:
    return
  import jax  # pylint: disable=g-import-not-at-top

  kwargs = {}
  if dist.coordinator_address:
    kwargs["coordinator_address"] = dist.coordinator_address
  if dist.num_processes > 0:
    kwargs["num_processes"] = dist.num_processes
  if dist.process_id >= 0:
    kwargs["process_id"] = dist.process_id
  if dist.local_device_ids:
    kwargs["local_device_ids"] = [int(x) for x in str(dist.local_device_ids).split(",")]
  jax.distributed.initialize(**kwargs)
  logging.info(
      "jax.distributed: process %d of %d, %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
  if not FLAGS["verbosity"].present:  # orbax logs every checkpoint event at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    malloc.configure()  # before JAX's first computation
  except ValueError as e:
    print(f"\nrrpo_jax: {e}", file=sys.stderr, flush=True)
    sys.exit(1)
  config = FLAGS.config
  init_distributed(config.distributed)
  from rrpo_jax.train import trainer  # pylint: disable=g-import-not-at-top  (after distributed init)

  try:
    workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
    trainer.train_and_evaluate(config, workdir)
  except trainer.USER_ERRORS as e:
    print(f"\nrrpo_jax: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
