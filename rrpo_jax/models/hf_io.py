"""Hugging Face <-> Flax weights for the rerankers (cross_encoder.py, modernbert.py, qwen3.py):
state dict <-> nested Flax params through the family's name table (hf_tables.py), shape checks,
and the weight files (safetensors, single or sharded; legacy pytorch_model.bin through torch's
weights-only unpickler).

The names callers use from one place are re-exported here: the tables (hf_tables: TABLES, PREFIX,
expand, rows_for) and the config.json mapping (hf_configs: config_from_hf, config_to_hf,
ARCHITECTURE).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from rrpo_jax.models.hf_configs import (  # noqa: F401  (re-exported)
    ARCHITECTURE,
    MODEL_TYPE,
    SEQ_CLS_ARCHITECTURE,
    config_from_hf,
    config_to_hf,
)
from rrpo_jax.models.hf_tables import HEAD_PATHS, IGNORED_SUFFIXES, PREFIX, TABLES, expand, rows_for  # noqa: F401


@dataclasses.dataclass
class LoadReport:
  """What a conversion found: names in HF spelling (with the family prefix stripped)."""

  missing: list[str]  # expected by our model, absent from the state dict
  unexpected: list[str]  # present in the state dict, unused by our model

  def missing_head_only(self, family: str) -> bool:
    """True if only the head (and BERT's pooler, which some encoders lack) is missing."""
    head = {h for h, _, _, base in TABLES[family] if not base or h.startswith("pooler.")}
    return all(n in head for n in self.missing)


def _normalise_name(name: str, family: str) -> str:
  for prefix in (PREFIX[family], "bert.", "roberta.", "model."):
    if name.startswith(prefix):
      name = name[len(prefix) :]
      break
  return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def hf_to_flax(state: Mapping[str, np.ndarray], config) -> tuple[dict[str, Any], LoadReport]:
  """HF state dict -> (nested Flax params of what was found, report of missing/unexpected names).

  Shape mismatches raise ValueError naming the weight.
  """
  found = {_normalise_name(k, config.family): np.asarray(v) for k, v in state.items()}
  params: dict[str, Any] = {}
  missing, used = [], set()
  if config.family == "qwen3" and config.tie_word_embeddings:
    used.add("lm_head.weight")  # some tied checkpoints store the copy anyway
  for hf, fx, kind, _ in rows_for(config):
    if hf not in found:
      missing.append(hf)
      continue
    arr = found[hf]
    used.add(hf)
    if kind == "dense":
      arr = arr.T
    node = params
    *parents, leaf = fx.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.ascontiguousarray(arr, dtype=np.float32)
  unexpected = sorted(k for k in found if k not in used and not k.endswith(IGNORED_SUFFIXES))
  return params, LoadReport(missing=missing, unexpected=unexpected)


def flax_to_hf(params: Mapping[str, Any], config, *, head: str = "default") -> dict[str, np.ndarray]:
  """Nested Flax params -> HF state dict (float32 numpy, contiguous) of ARCHITECTURE[family]
  (head="default") or, for Qwen3, of Qwen3ForSequenceClassification (head="seq_cls": no lm_head,
  score.weight [1, H] = W[yes] - W[no] with W = lm_head or the tied embedding)."""
  if head not in ("default", "seq_cls") or (head == "seq_cls" and config.family not in SEQ_CLS_ARCHITECTURE):
    raise ValueError(f"head {head!r} not available for family {config.family!r}")
  out = {}
  prefix = PREFIX[config.family]
  if head == "seq_cls":
    table = np.asarray(params["embed_tokens" if config.tie_word_embeddings else "lm_head"]["embedding"], np.float32)
    out["score.weight"] = (table[config.yes_id] - table[config.no_id])[None]
  for hf, fx, kind, base in rows_for(config):
    if head == "seq_cls" and not base:
      continue
    node = params
    for p in fx.split("/"):
      node = node[p]
    arr = np.asarray(node, dtype=np.float32)
    out[(prefix if base else "") + hf] = np.ascontiguousarray(arr.T if kind == "dense" else arr)
  return out


def check_shapes(params: Mapping[str, Any], reference: Mapping[str, Any], where: str = "") -> None:
  """Raises ValueError naming every leaf of `params` whose shape differs from `reference`."""
  bad = []
  for key, value in params.items():
    path = f"{where}/{key}" if where else key
    if isinstance(value, Mapping):
      check_shapes(value, reference[key], path)
    elif tuple(np.shape(value)) != tuple(np.shape(reference[key])):
      bad.append(f"{path}: checkpoint {np.shape(value)} vs model {np.shape(reference[key])}")
  if bad:
    raise ValueError("shape mismatch: " + "; ".join(bad))


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Weights of an HF model directory as numpy: model.safetensors (single or sharded index) or
  pytorch_model.bin (torch.load with weights_only=True: no pickled code runs)."""
  st = os.path.join(path, "model.safetensors")
  index = os.path.join(path, "model.safetensors.index.json")
  binf = os.path.join(path, "pytorch_model.bin")
  if os.path.exists(st) or os.path.exists(index):
    if os.path.exists(st):
      return _read_safetensors(st)
    try:
      with open(index, encoding="utf-8") as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      raise ValueError(f"{index}: not a safetensors index ({type(e).__name__}: {e}); export the model again") from None
    out = {}
    for shard in shards:
      out.update(_read_safetensors(os.path.join(path, shard)))
    return out
  if os.path.exists(binf):
    return _read_bin(binf)
  raise FileNotFoundError(f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {path}")


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  """One safetensors file; a truncated or damaged one is a ValueError naming it."""
  from safetensors.numpy import load_file

  try:
    return dict(load_file(path))
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (safetensors' Rust errors have their own class)
    raise ValueError(
        f"{path}: not a readable safetensors file ({type(e).__name__}: {str(e)[:200]}); it may be truncated: "
        "export or download it again"
    ) from None


class UnsafeCheckpointError(ValueError):
  """A pickled checkpoint holds objects other than tensors: refused, and nothing in it was run."""


def _read_bin(path: str) -> dict[str, np.ndarray]:
  """A pytorch_model.bin through torch.load(weights_only=True): the restricted unpickler builds only
  tensors and plain containers, so a pickled payload (a __reduce__ calling os.system, ...) is refused
  before it can run. Prefer model.safetensors, which holds no code at all."""
  import pickle  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel  (only for legacy .bin checkpoints)

  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    reason = str(e).strip().splitlines()
    detail = next(
        (line.strip() for line in reason if "Unsupported" in line or "global" in line.lower()),
        reason[-1].strip() if reason else "",
    )[:300]
    raise UnsafeCheckpointError(
        f"{path}: refused to load: the pickle holds objects other than tensors, which could run code "
        f"(torch.load weights_only=True): {detail}. Convert it to model.safetensors only if you trust its "
        "origin."
    ) from None
  except Exception as e:  # pylint: disable=broad-except  (torch's unpickler fails in many ways on junk)
    raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
  if not isinstance(state, dict):
    raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
  return {
      k: v.detach().to(torch.float32).numpy()
      for k, v in state.items()
      if hasattr(v, "detach") and v.is_floating_point()
  }


def write_safetensors(state: Mapping[str, np.ndarray], path: str) -> None:
  """Writes a numpy state dict with metadata format=pt (what transformers expects)."""
  from safetensors.numpy import save_file

  save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, path, metadata={"format": "pt"})
