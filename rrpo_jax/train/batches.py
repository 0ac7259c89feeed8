"""Data glue between the data module and the steps: the resumable loader, model inputs, labels."""

from __future__ import annotations

import jax
import numpy as np

from rrpo_jax.data import Loader, make_encode_fn
from rrpo_jax.models.packing import PACKED_KEYS
from rrpo_jax.core.sharding import DataParallel

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids") + PACKED_KEYS  # padded or packed (packing.py)


def make_loader(reranker, dp: DataParallel, examples, *, n: int, batch_size: int, seed: int) -> Loader:
  """The data module's resumable, sharded Loader over `examples`, tokenised by the reranker."""
  return Loader(
      examples,
      make_encode_fn(reranker.encoder, n=n),
      batch_size=batch_size,
      n=n,
      seed=seed,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      local_device_count=dp.local_size,
  )


def model_inputs(batch: dict) -> dict:
  """The tokenised arrays the model reads: [B, N, L] each, or the packed rows [B, R, L] and pair_start [B, N]."""
  return {k: batch[k] for k in INPUT_KEYS if k in batch}


def labels_for(batch: dict, kind: str) -> np.ndarray:
  """Relevance labels float32[B, n]: is_supporting where the dataset gives it (auto), else has_answer.

  kind: one of config.LABEL_KINDS (sft.labels).
  """
  supporting = np.asarray(batch["is_supporting"])
  has_answer = np.asarray(batch["has_answer"], bool)
  if kind == "has_answer":
    use = np.zeros(supporting.shape[0], bool)
  elif kind == "is_supporting":
    use = np.ones(supporting.shape[0], bool)
  else:
    # numpy's stubs type any(axis=...) as a scalar or an array; over axis -1 of [B, n] it is bool[B].
    use = (supporting >= 0).any(axis=-1)  # type: ignore[assignment]
  labels = np.where(use[:, None], supporting == 1, has_answer)
  return (labels & np.asarray(batch["where"], bool)).astype(np.float32)


def encode(reranker, examples, n: int) -> tuple[dict, np.ndarray]:
  """Token arrays [B, n, L] and where bool[B, n]; None examples are padding queries."""
  questions = [ex.question if ex is not None else "" for ex in examples]
  passages = [[(c.title, c.text) for c in ex.candidates[:n]] if ex is not None else [] for ex in examples]
  out = reranker.encoder.encode(questions, passages, n=n)
  where = out.pop("where")
  return out, where
