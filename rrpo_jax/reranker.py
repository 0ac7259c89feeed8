"""Reranker: the cross-encoder with its tokenizer, loading, export and inference API.

  r = Reranker.from_pretrained(path)          # HF dir (BERT / XLM-R), or one we saved
  r.score("who wrote ...", [(title, text), ...])   -> float32[N]
  r.rank(query, passages, k=3)                -> [(index, score), ...] best first
  r.apply(params, inputs, *, key=None)        -> float32[B, N]   (the trainer's apply_fn)
  r.save_pretrained(out_dir)                  # loads in transformers and sentence-transformers

Scoring sorts pairs by token length and runs them in chunks of at most `batch_size` pairs, each
padded to the next multiple of `score_step` tokens (finer than the training buckets: sorted
chunks are nearly uniform in length, so little is padded) and to a power-of-two row count, so jit
compiles at most ceil(max_length / score_step) * (log2(batch_size) + 1) shapes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rrpo_jax import hf_io, modeling
from rrpo_jax.modeling import CrossEncoderConfig, init_params
from rrpo_jax.tokenization import DEFAULT_BUCKETS, Passage, PairEncoder, smallest_bucket

logger = logging.getLogger(__name__)

META_FILE = "rrpo_jax.json"  # our encoding settings, written beside the HF files


def _merge(base: dict, new: Mapping) -> dict:
  out = dict(base)
  for k, v in new.items():
    out[k] = _merge(base[k], v) if isinstance(v, Mapping) else v
  return out


# A URL (kept as it is), or an absolute path (POSIX, home-relative or Windows) not inside a relative path.
_ABS_PATH = re.compile(r"(?P<url>[A-Za-z][\w+.-]*://[^\s;,]*)|"
                       r"(?<![\w./\\-])(?:~|[A-Za-z]:)?[/\\][^\s'\"`;,()\[\]{}<>|]+")


def public_text(text: str | None) -> str | None:
  """`text` with every absolute path cut to its last component ("/home/ann/data/train.jsonl" ->
  "train.jsonl"): what an exported directory may say about where it was trained."""
  if not text:
    return text
  cut = _ABS_PATH.sub(lambda m: m.group(0) if m.group("url") else
                      os.path.basename(m.group(0).rstrip("/\\").replace("\\", "/")) or "/", text)
  home = os.path.expanduser("~")
  return cut.replace(home, "~") if len(home) > 1 else cut


class Reranker:
  """A cross-encoder reranker: config, params and encoder (PairEncoder); scores via modeling.scores."""

  def __init__(self, config: CrossEncoderConfig, params: Any, tokenizer, *, max_length: int = 256,
               buckets: Sequence[int] = DEFAULT_BUCKETS, batch_size: int = 32,
               score_step: int = 32, base_model: str | None = None):
    self.config = config
    self.params = params
    self.encoder = PairEncoder(tokenizer, max_length=max_length, buckets=buckets)
    self.batch_size = int(batch_size)
    self.score_buckets = tuple(range(score_step, max_length, score_step)) + (max_length,)
    self.base_model = base_model
    self.load_report: hf_io.LoadReport | None = None
    self._forward = jax.jit(self._eval_scores)

  @property
  def tokenizer(self):
    return self.encoder.tokenizer

  # ---------------------------------------------------------------- pure score functions
  def apply(self, params, inputs: Mapping[str, Any], *, key=None) -> jax.Array:
    """Scores float32[B, N] for tokenised inputs [B, N, L] (extra keys such as `where` ignored).

    key=None: eval mode (no dropout); a PRNG key: training mode, dropout driven by the key.
    """
    return modeling.scores(self.config, params, inputs["input_ids"], inputs["attention_mask"],
                           inputs.get("token_type_ids"), key=key)

  def _eval_scores(self, params, input_ids, attention_mask, token_type_ids):
    return modeling.scores(self.config, params, input_ids, attention_mask, token_type_ids)

  # ---------------------------------------------------------------- inference
  def score_pairs(self, queries: Sequence[str], passages: Sequence[Passage]) -> np.ndarray:
    """Scores float32[M] of pairs (queries[i], passages[i]); passages are (title, text) or str."""
    if len(queries) != len(passages):
      raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    if not queries:
      return np.zeros((0,), np.float32)
    ids, types = self.encoder.tokenize(queries, passages)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    pending = []
    for start in range(0, len(order), self.batch_size):
      idx = order[start:start + self.batch_size]
      rows = 1 << (len(idx) - 1).bit_length()  # next power of two >= len(idx)
      length = smallest_bucket(len(ids[idx[0]]), self.score_buckets)
      batch = self.encoder.pad([ids[i] for i in idx] + [[]] * (rows - len(idx)),
                               [types[i] for i in idx] + [[]] * (rows - len(idx)), length)
      out = self._forward(self.params, batch["input_ids"], batch["attention_mask"],
                          batch["token_type_ids"])
      pending.append((idx, out))  # dispatch is asynchronous: tokenise/pad the next chunk meanwhile
    scores = np.empty(len(queries), np.float32)
    for idx, out in pending:
      scores[idx] = np.asarray(out)[:len(idx)]
    return scores

  def score(self, query: str, passages: Sequence[Passage]) -> np.ndarray:
    """Scores float32[N] of one query against N passages ((title, text) pairs or strings)."""
    return self.score_pairs([query] * len(passages), passages)

  def rank(self, query: str, passages: Sequence[Passage], k: int | None = None
           ) -> list[tuple[int, float]]:
    """The top-k (index into passages, score), best first (all when k is None); ties keep order."""
    s = self.score(query, passages)
    order = np.argsort(-s, kind="stable")[:k]
    return [(int(i), float(s[i])) for i in order]

  # ---------------------------------------------------------------- loading
  @classmethod
  def from_pretrained(cls, path: str, *, dtype: str = "float32", remat: bool = False,
                      max_length: int | None = None, buckets: Sequence[int] | None = None,
                      batch_size: int = 32, seed: int = 0, allow_missing: bool = False
                      ) -> "Reranker":
    """Loads a local HF directory (config.json + model.safetensors or pytorch_model.bin +
    tokenizer files) or a directory written by save_pretrained.

    A checkpoint without a classification head (a plain encoder such as all-MiniLM-L6-v2) gets
    a freshly initialised head (from `seed`), with a logged warning. Other missing weights raise
    ValueError unless allow_missing; unexpected weights are logged by name.
    """
    from transformers import AutoTokenizer
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
      hf_config = json.load(f)
    meta = {}
    if os.path.exists(os.path.join(path, META_FILE)):
      with open(os.path.join(path, META_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    config = hf_io.config_from_hf(hf_config, dtype=dtype, remat=remat)
    if config.num_labels != 1:
      raise ValueError(f"{path}: a reranker needs num_labels=1 (one relevance logit), "
                       f"this checkpoint has {config.num_labels}")
    tokenizer = AutoTokenizer.from_pretrained(path)

    found, report = hf_io.hf_to_flax(hf_io.read_state_dict(path), config)
    fresh = jax.tree.map(np.asarray, init_params(config, jax.random.key(seed)))
    hf_io.check_shapes(found, fresh)
    if report.missing and not report.missing_head_only(config.family) and not allow_missing:
      raise ValueError(f"{path}: missing weights {report.missing}")
    if report.missing:
      logger.warning("%s: no weights for %s: freshly initialised (seed %d)%s", path,
                     ", ".join(report.missing), seed,
                     "; this is a plain encoder, the classification head is new and untrained"
                     if report.missing_head_only(config.family) else "")
    if report.unexpected:
      logger.warning("%s: unused weights in the checkpoint: %s", path, ", ".join(report.unexpected))
    params = jax.tree.map(jnp.asarray, _merge(fresh, found))

    positions = config.max_position_embeddings - (config.pad_token_id + 1
                                                  if config.family == "xlm-roberta" else 0)
    if max_length is None:
      max_length = meta.get("max_length", 256)
    max_length = min(int(max_length), positions)
    reranker = cls(config, params, tokenizer, max_length=max_length,
                   buckets=buckets or meta.get("buckets", DEFAULT_BUCKETS), batch_size=batch_size,
                   base_model=meta.get("base_model") or hf_config.get("_name_or_path") or
                   os.path.basename(os.path.normpath(path)))
    reranker.load_report = report
    return reranker

  # ---------------------------------------------------------------- export
  def save_pretrained(self, path: str, *, training: str | None = None) -> None:
    """Writes config.json (*ForSequenceClassification, num_labels=1), model.safetensors
    (format=pt), the tokenizer files, rrpo_jax.json and a model card README.md. No torch needed.

    The directory is meant to be shared: absolute paths in `training` and the base model's name
    are cut to their last component, so it holds no directory or user name of this machine."""
    os.makedirs(path, exist_ok=True)
    training, base_model = public_text(training), public_text(self.base_model)
    params = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), self.params)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
      json.dump(hf_io.config_to_hf(self.config), f, indent=2)
    hf_io.write_safetensors(hf_io.flax_to_hf(params, self.config),
                            os.path.join(path, "model.safetensors"))
    self.tokenizer.model_max_length = self.encoder.max_length
    self.tokenizer.save_pretrained(path)
    with open(os.path.join(path, META_FILE), "w", encoding="utf-8") as f:
      json.dump({"family": self.config.family, "max_length": self.encoder.max_length,
                 "buckets": list(self.encoder.buckets), "base_model": base_model,
                 "passage_format": "title. text"}, f, indent=2)
    with open(os.path.join(path, "README.md"), "w", encoding="utf-8") as f:
      f.write(self._model_card(training, base_model))

  def _model_card(self, training: str | None, base_model: str | None) -> str:
    arch = hf_io.ARCHITECTURE[self.config.family]
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [reranker, cross-encoder, rrpo_jax]
base_model: {base_model or "unknown"}
---
# Cross-encoder reranker ({arch})

- Base model: {base_model or "unknown"}
- Training: {training or "not stated (exported by rrpo_jax)"}
- Exported by rrpo_jax (JAX/Flax), float32 weights, one relevance logit per (query, passage)
  pair; higher is more relevant. Max length {self.encoder.max_length} tokens; passages are written
  as "title. text" and only the passage is truncated.

## Usage
```python
from sentence_transformers import CrossEncoder
model = CrossEncoder("path/to/this/dir")
scores = model.predict([("who wrote hamlet", "Hamlet. Hamlet is a tragedy by William Shakespeare.")])

from transformers import AutoTokenizer, AutoModelForSequenceClassification
tok = AutoTokenizer.from_pretrained("path/to/this/dir")
model = AutoModelForSequenceClassification.from_pretrained("path/to/this/dir")
logits = model(**tok(["who wrote hamlet"], ["Hamlet. Hamlet is a tragedy ..."], return_tensors="pt")).logits

from rrpo_jax.reranker import Reranker
r = Reranker.from_pretrained("path/to/this/dir")
r.rank("who wrote hamlet", [("Hamlet", "Hamlet is a tragedy ..."), ("Paris", "Paris is ...")], k=1)
```
"""
