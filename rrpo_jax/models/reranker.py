"""Reranker: a cross-encoder or decoder reranker with its tokenizer, loading, export and inference API.

  r = Reranker.from_pretrained(path)          # HF dir (BERT / XLM-R / ModernBERT / Qwen3), or ours
  r.score("who wrote ...", [(title, text), ...])   -> float32[N]
  r.rank(query, passages, k=3)                -> [(index, score), ...] best first
  r.apply(params, inputs, *, key=None)        -> float32[B, N]   (the trainer's apply_fn)
  r.save_pretrained(out_dir)                  # loads in transformers and sentence-transformers

Scoring sorts pairs by token length and runs them in chunks of at most `batch_size` pairs, each
padded to the next multiple of `score_step` tokens (finer than the training buckets: sorted
chunks are nearly uniform in length, so little is padded) and to a power-of-two row count, so jit
compiles at most ceil(max_length / score_step) * (log2(batch_size) + 1) shapes.

Families: the config's `family` picks the model module (MODELS: scores / init_params) and the
encoder (PairEncoder for cross-encoders, PromptEncoder, left-padded prompts, for Qwen3); every
caller (trainer, evaluation, export) goes through `apply` / `score_pairs` and never sees which.
Families whose module has packed_scores (ModernBERT) can take the trainer's [B, N] batches as
packed rows (rrpo_jax.models.packing; `pack`, data.pack): encoder.encode picks the layout, `apply` reads it.
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

from rrpo_jax import paths
from rrpo_jax.models import hf_io
from rrpo_jax.models import cross_encoder
from rrpo_jax.models import modernbert
from rrpo_jax.models import qwen3
from rrpo_jax.models.packing import PACK_MODES, PACKED_KEYS
from rrpo_jax.models.tokenization import DEFAULT_BUCKETS, Passage, PairEncoder, PromptEncoder, smallest_bucket

logger = logging.getLogger(__name__)

META_FILE = "rrpo_jax.json"  # our encoding settings, written beside the HF files

# family -> module with scores(config, params, ids, mask, types, *, key) and init_params(config, key)
MODELS = {f: m for m in (cross_encoder, modernbert, qwen3) for f in m.FAMILIES}


def packs(family: str) -> bool:
  """Whether the family's model reads packed rows (its module has packed_scores)."""
  return hasattr(MODELS[family], "packed_scores")


def make_encoder(tokenizer, config, *, max_length: int, buckets: Sequence[int], pack: str = "auto") -> PairEncoder:
  """The family's encoder: PromptEncoder (left-padded prompts) for decoders, else PairEncoder.

  pack (packing.PACK_MODES): "auto" packs where it pays for families that can (packs), and is
  "off" for the others; "on" for a family that cannot raises ValueError.
  """
  if pack not in PACK_MODES:
    raise ValueError(f"pack must be one of {PACK_MODES}, got {pack!r}")
  if pack == "on" and not packs(config.family):
    able = sorted(f for f in MODELS if packs(f))
    raise ValueError(f"pack='on': the {config.family} family has no packed layout (families that do: {able})")
  if config.family == "qwen3":
    return PromptEncoder(tokenizer, max_length=max_length, buckets=buckets, instruction=config.instruction)
  return PairEncoder(tokenizer, max_length=max_length, buckets=buckets, pack=pack if packs(config.family) else "off")


def init_params(config, key):
  """Fresh parameters of the config's family."""
  return MODELS[config.family].init_params(config, key)


def _merge(base: dict, new: Mapping) -> dict:
  out = dict(base)
  for k, v in new.items():
    out[k] = _merge(base[k], v) if isinstance(v, Mapping) else v
  return out


# A URL (kept as it is), or an absolute path (POSIX, home-relative or Windows) not inside a relative path.
_ABS_PATH = re.compile(
    r"(?P<url>[A-Za-z][\w+.-]*://[^\s;,]*)|" r"(?<![\w./\\-])(?:~|[A-Za-z]:)?[/\\][^\s'\"`;,()\[\]{}<>|]+"
)


def public_text(text: str | None) -> str | None:
  """`text` with every absolute path cut to its last component ("/home/ann/data/train.jsonl" ->
  "train.jsonl"): what an exported directory may say about where it was trained."""
  if not text:
    return text
  cut = _ABS_PATH.sub(
      lambda m: m.group(0) if m.group("url") else os.path.basename(m.group(0).rstrip("/\\").replace("\\", "/")) or "/",
      text,
  )
  home = os.path.expanduser("~")
  return cut.replace(home, "~") if len(home) > 1 else cut


class Reranker:
  """A reranker: config, params and encoder (make_encoder); scores via MODELS[family].scores."""

  def __init__(
      self,
      config: Any,
      params: Any,
      tokenizer,
      *,
      max_length: int = 256,
      buckets: Sequence[int] = DEFAULT_BUCKETS,
      batch_size: int = 32,
      score_step: int = 32,
      base_model: str | None = None,
      pack: str = "auto",
  ):
    self.config = config
    self.params = params
    self.encoder = make_encoder(tokenizer, config, max_length=max_length, buckets=buckets, pack=pack)
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
    """Scores float32[B, N] for tokenised inputs [B, N, L], or packed rows (the keys
    packing.PACKED_KEYS, as self.encoder.encode gives them); extra keys such as `where` ignored.

    key=None: eval mode (no dropout); a PRNG key: training mode, dropout driven by the key.
    """
    if "pair_start" in inputs:
      return MODELS[self.config.family].packed_scores(self.config, params, *(inputs[k] for k in PACKED_KEYS), key=key)
    return MODELS[self.config.family].scores(
        self.config, params, inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"), key=key
    )

  def _eval_scores(self, params, input_ids, attention_mask, token_type_ids):
    return MODELS[self.config.family].scores(self.config, params, input_ids, attention_mask, token_type_ids)

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
      idx = order[start : start + self.batch_size]
      rows = 1 << (len(idx) - 1).bit_length()  # next power of two >= len(idx)
      length = smallest_bucket(len(ids[idx[0]]), self.score_buckets)
      batch = self.encoder.pad(
          [ids[i] for i in idx] + [[]] * (rows - len(idx)), [types[i] for i in idx] + [[]] * (rows - len(idx)), length
      )
      out = self._forward(self.params, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
      pending.append((idx, out))  # dispatch is asynchronous: tokenise/pad the next chunk meanwhile
    scores = np.empty(len(queries), np.float32)
    for idx, out in pending:
      scores[idx] = np.asarray(out)[: len(idx)]
    return scores

  def score(self, query: str, passages: Sequence[Passage]) -> np.ndarray:
    """Scores float32[N] of one query against N passages ((title, text) pairs or strings)."""
    return self.score_pairs([query] * len(passages), passages)

  def rank(self, query: str, passages: Sequence[Passage], k: int | None = None) -> list[tuple[int, float]]:
    """The top-k (index into passages, score), best first (all when k is None); ties keep order."""
    s = self.score(query, passages)
    order = np.argsort(-s, kind="stable")[:k]
    return [(int(i), float(s[i])) for i in order]

  # ---------------------------------------------------------------- loading
  @classmethod
  def from_pretrained(
      cls,
      path: str,
      *,
      dtype: str = "float32",
      remat: bool = False,
      max_length: int | None = None,
      buckets: Sequence[int] | None = None,
      batch_size: int = 32,
      seed: int = 0,
      allow_missing: bool = False,
      instruction: str | None = None,
      pack: str = "auto",
  ) -> "Reranker":
    """Loads a local HF directory (config.json + model.safetensors, sharded or not, or
    pytorch_model.bin + tokenizer files) or a directory written by save_pretrained.

    Qwen3 (a Qwen3ForCausalLM directory such as Qwen3-Reranker's): the "yes" / "no" token ids come
    from the tokenizer; `instruction` (else the one saved in rrpo_jax.json, else the card's
    default) goes into the prompts.

    A checkpoint without a classification head (a plain encoder such as all-MiniLM-L6-v2) gets
    a freshly initialised head (from `seed`), with a logged warning. Other missing weights raise
    ValueError unless allow_missing; unexpected weights are logged by name. `pack`: see make_encoder.
    """
    from transformers import AutoTokenizer

    hf_config = paths.read_json_object(os.path.join(path, "config.json"))
    meta = (
        paths.read_json_object(os.path.join(path, META_FILE)) if os.path.exists(os.path.join(path, META_FILE)) else {}
    )
    config = hf_io.config_from_hf(hf_config, dtype=dtype, remat=remat)
    if config.num_labels != 1:
      raise ValueError(
          f"{path}: a reranker needs num_labels=1 (one relevance logit), " f"this checkpoint has {config.num_labels}"
      )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if config.family == "qwen3":
      if any(a.endswith("ForSequenceClassification") for a in hf_config.get("architectures") or []):
        raise ValueError(
            f"{path}: load the Qwen3ForCausalLM directory (the seq-cls export has no " "yes/no rows to train)"
        )
      yes, no = (tokenizer.convert_tokens_to_ids(t) for t in ("yes", "no"))
      if yes in (None, tokenizer.unk_token_id) or no in (None, tokenizer.unk_token_id):
        raise ValueError(f"{path}: the tokenizer has no single 'yes' / 'no' tokens")
      config = config.replace(
          yes_id=yes,
          no_id=no,
          instruction=instruction or meta.get("instruction"),
          pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id,
      )

    found, report = hf_io.hf_to_flax(hf_io.read_state_dict(path), config)
    fresh = jax.tree.map(np.asarray, init_params(config, jax.random.key(seed)))
    hf_io.check_shapes(found, fresh)
    if report.missing and not report.missing_head_only(config.family) and not allow_missing:
      raise ValueError(f"{path}: missing weights {report.missing}")
    if report.missing:
      logger.warning(
          "%s: no weights for %s: freshly initialised (seed %d)%s",
          path,
          ", ".join(report.missing),
          seed,
          "; this is a plain encoder, the classification head is new and untrained"
          if report.missing_head_only(config.family)
          else "",
      )
    if report.unexpected:
      logger.warning("%s: unused weights in the checkpoint: %s", path, ", ".join(report.unexpected))
    params = jax.tree.map(jnp.asarray, _merge(fresh, found))

    positions = config.max_position_embeddings - (config.pad_token_id + 1 if config.family == "xlm-roberta" else 0)
    if max_length is None:
      max_length = meta.get("max_length", 256)
    max_length = min(int(max_length), positions)
    reranker = cls(
        config,
        params,
        tokenizer,
        max_length=max_length,
        buckets=buckets or meta.get("buckets", DEFAULT_BUCKETS),
        batch_size=batch_size,
        base_model=meta.get("base_model") or hf_config.get("_name_or_path") or os.path.basename(os.path.normpath(path)),
        pack=pack,
    )
    reranker.load_report = report
    return reranker

  # ---------------------------------------------------------------- export
  def save_pretrained(self, path: str, *, training: str | None = None, head: str = "default") -> None:
    """Writes config.json, model.safetensors (format=pt), the tokenizer files, rrpo_jax.json and a
    model card README.md. No torch needed.

    head="default": the family's architecture (BERT / XLM-R *ForSequenceClassification with
    num_labels=1; Qwen3ForCausalLM, which from_pretrained loads back). head="seq_cls" (Qwen3):
    Qwen3ForSequenceClassification with score = lm_head[yes] - lm_head[no], for
    sentence-transformers' CrossEncoder (given the prompt as query and document text, see the card).
    The directory is meant to be shared: absolute paths in `training` and the base model's name
    are cut to their last component, so it holds no directory or user name of this machine.
    """
    os.makedirs(path, exist_ok=True)
    training, base_model = public_text(training), public_text(self.base_model)
    params = jax.tree.map(lambda x: np.asarray(jax.device_get(x), np.float32), self.params)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
      json.dump(hf_io.config_to_hf(self.config, head=head), f, indent=2)
    hf_io.write_safetensors(hf_io.flax_to_hf(params, self.config, head=head), os.path.join(path, "model.safetensors"))
    self.tokenizer.model_max_length = self.encoder.max_length
    self.tokenizer.save_pretrained(path)
    with open(os.path.join(path, META_FILE), "w", encoding="utf-8") as f:
      meta = {
          "family": self.config.family,
          "max_length": self.encoder.max_length,
          "buckets": list(self.encoder.buckets),
          "base_model": base_model,
          "passage_format": "title. text",
      }
      if isinstance(self.encoder, PromptEncoder):
        meta.update(instruction=self.encoder.instruction, head=head)
      json.dump(meta, f, indent=2)
    with open(os.path.join(path, "README.md"), "w", encoding="utf-8") as f:
      f.write(
          self._qwen3_card(training, head, base_model)
          if self.config.family == "qwen3"
          else self._model_card(training, base_model)
      )

  def _qwen3_card(self, training: str | None, head: str, base_model: str | None) -> str:
    arch = hf_io.config_to_hf(self.config, head=head)["architectures"][0]
    assert isinstance(self.encoder, PromptEncoder)  # make_encoder's choice for qwen3
    return f"""---
library_name: transformers
tags: [reranker, qwen3, rrpo_jax]
base_model: {base_model or "unknown"}
---
# Qwen3 decoder reranker ({arch})

- Base model: {base_model or "unknown"}
- Training: {training or "not stated (exported by rrpo_jax)"}
- Exported by rrpo_jax (JAX/Flax), float32 weights. Prompt: Qwen3-Reranker's template (prefix,
  "<Instruct>: {{instruction}}\\n<Query>: {{query}}\\n<Document>: {{title. text}}", suffix), left padding,
  at most {self.encoder.max_length} tokens. Instruction: "{self.encoder.instruction}".
- Score: logit("yes") - logit("no") at the last position (P(yes) = sigmoid(score)).
  {"The seq-cls head is that difference: score.weight = lm_head[yes] - lm_head[no]." if head == "seq_cls" else ""}

## Usage
```python
from rrpo_jax.models.reranker import Reranker
r = Reranker.from_pretrained("path/to/this/dir")   # the Qwen3ForCausalLM directory
r.rank("who wrote hamlet", [("Hamlet", "Hamlet is a tragedy ..."), ("Paris", "Paris is ...")], k=1)

# seq-cls directory, sentence-transformers: pass the prompt split at the document
import torch
from sentence_transformers import CrossEncoder
from rrpo_jax.models.tokenization import QWEN3_RERANKER_PREFIX as P, QWEN3_RERANKER_SUFFIX as S
model = CrossEncoder("path/to/seq_cls/dir")
q = P + "<Instruct>: {self.encoder.instruction}\\n<Query>: who wrote hamlet\\n"
scores = model.predict([(q, "<Document>: Hamlet. Hamlet is a tragedy ..." + S)],
                       activation_fn=torch.nn.Identity())
```
"""

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

from rrpo_jax.models.reranker import Reranker
r = Reranker.from_pretrained("path/to/this/dir")
r.rank("who wrote hamlet", [("Hamlet", "Hamlet is a tragedy ..."), ("Paris", "Paris is ...")], k=1)
```
"""
