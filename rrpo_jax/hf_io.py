"""Hugging Face <-> Flax weights and configs for the rerankers (modeling*.py: BERT, XLM-R, ModernBERT, Qwen3).

One declarative table per family maps HF PyTorch state-dict names to Flax parameter paths and
serves both directions. Kinds: "dense" (a torch Linear weight [out, in] is the Flax kernel
[in, out] transposed), "copy" (same array: biases, LayerNorm weight -> scale, embeddings).
`{i}` in a row stands for the layer index. HF names are stored without the base-model prefix
("bert." / "roberta."), which is added on export and optional on import (plain encoders such as
BertModel checkpoints have none).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from rrpo_jax.modeling import CrossEncoderConfig
from rrpo_jax.modeling_modernbert import ModernBertConfig
from rrpo_jax.modeling_qwen3 import Qwen3RerankerConfig

_ENCODER = (
    ("embeddings.word_embeddings.weight", "word_embeddings/embedding", "copy"),
    ("embeddings.position_embeddings.weight", "position_embeddings/embedding", "copy"),
    ("embeddings.token_type_embeddings.weight", "token_type_embeddings/embedding", "copy"),
    ("embeddings.LayerNorm.weight", "embeddings_ln/scale", "copy"),
    ("embeddings.LayerNorm.bias", "embeddings_ln/bias", "copy"),
    ("encoder.layer.{i}.attention.self.query.weight", "layer_{i}/attention/query/kernel", "dense"),
    ("encoder.layer.{i}.attention.self.query.bias", "layer_{i}/attention/query/bias", "copy"),
    ("encoder.layer.{i}.attention.self.key.weight", "layer_{i}/attention/key/kernel", "dense"),
    ("encoder.layer.{i}.attention.self.key.bias", "layer_{i}/attention/key/bias", "copy"),
    ("encoder.layer.{i}.attention.self.value.weight", "layer_{i}/attention/value/kernel", "dense"),
    ("encoder.layer.{i}.attention.self.value.bias", "layer_{i}/attention/value/bias", "copy"),
    ("encoder.layer.{i}.attention.output.dense.weight", "layer_{i}/attention/output/kernel", "dense"),
    ("encoder.layer.{i}.attention.output.dense.bias", "layer_{i}/attention/output/bias", "copy"),
    ("encoder.layer.{i}.attention.output.LayerNorm.weight", "layer_{i}/attention_ln/scale", "copy"),
    ("encoder.layer.{i}.attention.output.LayerNorm.bias", "layer_{i}/attention_ln/bias", "copy"),
    ("encoder.layer.{i}.intermediate.dense.weight", "layer_{i}/intermediate/kernel", "dense"),
    ("encoder.layer.{i}.intermediate.dense.bias", "layer_{i}/intermediate/bias", "copy"),
    ("encoder.layer.{i}.output.dense.weight", "layer_{i}/output/kernel", "dense"),
    ("encoder.layer.{i}.output.dense.bias", "layer_{i}/output/bias", "copy"),
    ("encoder.layer.{i}.output.LayerNorm.weight", "layer_{i}/output_ln/scale", "copy"),
    ("encoder.layer.{i}.output.LayerNorm.bias", "layer_{i}/output_ln/bias", "copy"),
)

# (hf name, flax path, kind, in base model?) -- head rows are not prefixed.
BERT_TABLE = tuple((h, f, k, True) for h, f, k in _ENCODER) + (
    ("pooler.dense.weight", "pooler/kernel", "dense", True),
    ("pooler.dense.bias", "pooler/bias", "copy", True),
    ("classifier.weight", "classifier/kernel", "dense", False),
    ("classifier.bias", "classifier/bias", "copy", False),
)
XLM_ROBERTA_TABLE = tuple((h, f, k, True) for h, f, k in _ENCODER) + (
    ("classifier.dense.weight", "classifier_dense/kernel", "dense", False),
    ("classifier.dense.bias", "classifier_dense/bias", "copy", False),
    ("classifier.out_proj.weight", "classifier_out/kernel", "dense", False),
    ("classifier.out_proj.bias", "classifier_out/bias", "copy", False),
)
_QWEN3_ATTN = tuple(
    row
    for p in ("q", "k", "v", "o")
    for row in (
        (f"layers.{{i}}.self_attn.{p}_proj.weight", f"layer_{{i}}/self_attn/{p}_proj/kernel", "dense", True),
        (f"layers.{{i}}.self_attn.{p}_proj.bias", f"layer_{{i}}/self_attn/{p}_proj/bias", "copy", True),
    )
)
QWEN3_TABLE = (
    (("embed_tokens.weight", "embed_tokens/embedding", "copy", True),)
    + _QWEN3_ATTN
    + (
        ("layers.{i}.self_attn.q_norm.weight", "layer_{i}/self_attn/q_norm/scale", "copy", True),
        ("layers.{i}.self_attn.k_norm.weight", "layer_{i}/self_attn/k_norm/scale", "copy", True),
        ("layers.{i}.mlp.gate_proj.weight", "layer_{i}/mlp/gate_proj/kernel", "dense", True),
        ("layers.{i}.mlp.up_proj.weight", "layer_{i}/mlp/up_proj/kernel", "dense", True),
        ("layers.{i}.mlp.down_proj.weight", "layer_{i}/mlp/down_proj/kernel", "dense", True),
        ("layers.{i}.input_layernorm.weight", "layer_{i}/input_layernorm/scale", "copy", True),
        ("layers.{i}.post_attention_layernorm.weight", "layer_{i}/post_attention_layernorm/scale", "copy", True),
        ("norm.weight", "norm/scale", "copy", True),
        ("lm_head.weight", "lm_head/embedding", "copy", False),  # [V, H] rows, as HF stores them
    )
)
_MB_NORMS = (
    ("embeddings.norm", "embeddings_norm"),
    ("layers.{i}.attn_norm", "layer_{i}/attn_norm"),
    ("layers.{i}.mlp_norm", "layer_{i}/mlp_norm"),
    ("final_norm", "final_norm"),
)
_MB_DENSE = (
    ("layers.{i}.attn.Wqkv", "layer_{i}/Wqkv"),
    ("layers.{i}.attn.Wo", "layer_{i}/Wo"),
    ("layers.{i}.mlp.Wi", "layer_{i}/Wi"),
    ("layers.{i}.mlp.Wo", "layer_{i}/mlp_Wo"),
)
MODERNBERT_TABLE = (
    (("embeddings.tok_embeddings.weight", "tok_embeddings", "copy", True),)
    + tuple(
        row
        for h, f in _MB_NORMS
        for row in ((f"{h}.weight", f"{f}/scale", "copy", True), (f"{h}.bias", f"{f}/bias", "copy", True))
    )
    + tuple(
        row
        for h, f in _MB_DENSE
        for row in ((f"{h}.weight", f"{f}/kernel", "dense", True), (f"{h}.bias", f"{f}/bias", "copy", True))
    )
    + (
        ("head.dense.weight", "head_dense/kernel", "dense", False),
        ("head.dense.bias", "head_dense/bias", "copy", False),
        ("head.norm.weight", "head_norm/scale", "copy", False),
        ("head.norm.bias", "head_norm/bias", "copy", False),
        ("classifier.weight", "classifier/kernel", "dense", False),
        ("classifier.bias", "classifier/bias", "copy", False),
    )
)
TABLES = {"bert": BERT_TABLE, "xlm-roberta": XLM_ROBERTA_TABLE, "qwen3": QWEN3_TABLE, "modernbert": MODERNBERT_TABLE}
PREFIX = {"bert": "bert.", "xlm-roberta": "roberta.", "qwen3": "model.", "modernbert": "model."}
ARCHITECTURE = {
    "bert": "BertForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "qwen3": "Qwen3ForCausalLM",
    "modernbert": "ModernBertForSequenceClassification",
}
SEQ_CLS_ARCHITECTURE = {"qwen3": "Qwen3ForSequenceClassification"}  # families whose default is not one
MODEL_TYPE = {"bert": "bert", "xlm-roberta": "xlm-roberta", "qwen3": "qwen3", "modernbert": "modernbert"}
HEAD_PATHS = {"bert": ("classifier",), "xlm-roberta": ("classifier_dense", "classifier_out")}
# Buffers, not weights: never reported.
_IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids", "rotary_emb.inv_freq")


@dataclasses.dataclass
class LoadReport:
  """What a conversion found: names in HF spelling (with the family prefix stripped)."""

  missing: list[str]  # expected by our model, absent from the state dict
  unexpected: list[str]  # present in the state dict, unused by our model

  def missing_head_only(self, family: str) -> bool:
    """True if only the head (and BERT's pooler, which some encoders lack) is missing."""
    head = {h for h, _, _, base in TABLES[family] if not base or h.startswith("pooler.")}
    return all(n in head for n in self.missing)


def expand(family: str, num_layers: int) -> list[tuple[str, str, str, bool]]:
  """The family's table with `{i}` expanded for layers 0..num_layers-1."""
  rows = []
  for hf, fx, kind, base in TABLES[family]:
    if "{i}" in hf:
      rows += [(hf.format(i=i), fx.format(i=i), kind, base) for i in range(num_layers)]
    else:
      rows.append((hf, fx, kind, base))
  return rows


def rows_for(config) -> list[tuple[str, str, str, bool]]:
  """The table rows this config's parameter tree has (Qwen3: no lm_head when tied, no biases
  without attention_bias)."""
  rows = expand(config.family, config.num_layers)
  if config.family == "qwen3":
    rows = [
        r
        for r in rows
        if not (r[0].endswith("_proj.bias") and not config.attention_bias)
        and not (r[0] == "lm_head.weight" and config.tie_word_embeddings)
    ]
  if config.family == "modernbert":
    rows = [r for r in rows if _modernbert_has(r[0], config)]
  return rows


def _modernbert_has(name: str, config) -> bool:
  """Layer 0 has no attn_norm; biases exist per norm_bias / attention_bias / mlp_bias / classifier_bias."""
  if name.startswith("layers.0.attn_norm."):
    return False
  if not name.endswith(".bias") or name == "classifier.bias":
    return True
  if "norm." in name:
    return config.norm_bias
  if ".attn." in name:
    return config.attention_bias
  if ".mlp." in name:
    return config.mlp_bias
  return config.classifier_bias  # head.dense.bias


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
  unexpected = sorted(k for k in found if k not in used and not k.endswith(_IGNORED_SUFFIXES))
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


def config_from_hf(hf: Mapping[str, Any], **overrides: Any):
  """An HF config.json dict -> CrossEncoderConfig (bert / xlm-roberta / roberta) or
  Qwen3RerankerConfig (qwen3)."""
  model_type = hf.get("model_type", "bert")
  if model_type == "qwen3":
    return _qwen3_config_from_hf(hf, **overrides)
  if model_type == "modernbert":
    return _modernbert_config_from_hf(hf, **overrides)
  if model_type == "bert":
    family = "bert"
  elif model_type in ("xlm-roberta", "roberta"):
    family = "xlm-roberta"
  else:
    raise ValueError(f"unsupported model_type {model_type!r}: expected bert, xlm-roberta or roberta")
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"position_embedding_type {hf['position_embedding_type']!r} is not supported")
  archs = hf.get("architectures") or []
  has_head = any(a.endswith("ForSequenceClassification") for a in archs)
  num_labels = 1  # a plain encoder gets a one-logit head
  if has_head:
    num_labels = len(hf["id2label"]) if "id2label" in hf else int(hf.get("num_labels", 1))
  kw = dict(
      family=family,
      vocab_size=hf["vocab_size"],
      hidden_size=hf["hidden_size"],
      num_layers=hf["num_hidden_layers"],
      num_heads=hf["num_attention_heads"],
      intermediate_size=hf["intermediate_size"],
      max_position_embeddings=hf.get("max_position_embeddings", 512),
      type_vocab_size=hf.get("type_vocab_size", 2),
      layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
      hidden_act=hf.get("hidden_act", "gelu"),
      hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
      attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
      classifier_dropout=hf.get("classifier_dropout"),
      initializer_range=hf.get("initializer_range", 0.02),
      pad_token_id=hf.get("pad_token_id", 0 if family == "bert" else 1),
      num_labels=num_labels,
  )
  kw.update(overrides)
  return CrossEncoderConfig(**kw)


def _qwen3_config_from_hf(hf: Mapping[str, Any], **overrides: Any) -> Qwen3RerankerConfig:
  rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
  rope_type = rope.get("rope_type", rope.get("type", "default"))
  if rope_type != "default":
    raise ValueError(f"rope type {rope_type!r} is not supported (only the default RoPE)")
  if hf.get("use_sliding_window"):
    raise ValueError("use_sliding_window=true is not supported (Qwen3 checkpoints ship it false)")
  heads = hf["num_attention_heads"]
  kw = dict(
      vocab_size=hf["vocab_size"],
      hidden_size=hf["hidden_size"],
      num_layers=hf["num_hidden_layers"],
      num_heads=heads,
      num_kv_heads=hf.get("num_key_value_heads") or heads,
      head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
      intermediate_size=hf["intermediate_size"],
      max_position_embeddings=hf.get("max_position_embeddings", 40960),
      rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
      rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
      attention_bias=bool(hf.get("attention_bias", False)),
      tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
      hidden_act=hf.get("hidden_act", "silu"),
      attention_dropout=float(hf.get("attention_dropout", 0.0)),
      initializer_range=hf.get("initializer_range", 0.02),
  )
  if hf.get("pad_token_id") is not None:
    kw["pad_token_id"] = hf["pad_token_id"]
  kw.update(overrides)
  return Qwen3RerankerConfig(**kw)


def _qwen3_config_to_hf(config: Qwen3RerankerConfig, head: str) -> dict[str, Any]:
  d = {
      "architectures": [SEQ_CLS_ARCHITECTURE["qwen3"] if head == "seq_cls" else ARCHITECTURE["qwen3"]],
      "model_type": "qwen3",
      "vocab_size": config.vocab_size,
      "hidden_size": config.hidden_size,
      "intermediate_size": config.intermediate_size,
      "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads,
      "num_key_value_heads": config.num_kv_heads,
      "head_dim": config.head_dim,
      "hidden_act": config.hidden_act,
      "max_position_embeddings": config.max_position_embeddings,
      "rms_norm_eps": config.rms_norm_eps,
      "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
      "rope_theta": config.rope_theta,  # transformers 4.x reads this one
      "attention_bias": config.attention_bias,
      "attention_dropout": config.attention_dropout,
      "use_sliding_window": False,
      "sliding_window": None,
      "tie_word_embeddings": config.tie_word_embeddings and head != "seq_cls",
      "initializer_range": config.initializer_range,
      "pad_token_id": config.pad_token_id,
      "use_cache": True,
      "torch_dtype": "float32",
  }
  if head == "seq_cls":
    d.update(num_labels=1, id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
  return d


def _num_labels(hf: Mapping[str, Any]) -> int:
  """Labels of a *ForSequenceClassification config; 1 (a fresh one-logit head) for plain encoders."""
  if not any(a.endswith("ForSequenceClassification") for a in hf.get("architectures") or []):
    return 1
  return len(hf["id2label"]) if "id2label" in hf else int(hf.get("num_labels", 1))


def _modernbert_config_from_hf(hf: Mapping[str, Any], **overrides: Any) -> ModernBertConfig:
  rope = hf.get("rope_parameters") or {}
  full, slide = rope.get("full_attention") or {}, rope.get("sliding_attention") or {}
  for r in (full, slide):
    if r.get("rope_type", "default") != "default":
      raise ValueError(f"rope type {r['rope_type']!r} is not supported (only the default RoPE)")
  kw = dict(
      vocab_size=hf["vocab_size"],
      hidden_size=hf["hidden_size"],
      num_layers=hf["num_hidden_layers"],
      num_heads=hf["num_attention_heads"],
      intermediate_size=hf["intermediate_size"],
      max_position_embeddings=hf.get("max_position_embeddings", 8192),
      norm_eps=hf.get("norm_eps", 1e-5),
      norm_bias=bool(hf.get("norm_bias", False)),
      attention_bias=bool(hf.get("attention_bias", False)),
      mlp_bias=bool(hf.get("mlp_bias", False)),
      classifier_bias=bool(hf.get("classifier_bias", False)),
      layer_types=tuple(hf["layer_types"]) if hf.get("layer_types") else None,
      global_attn_every_n_layers=hf.get("global_attn_every_n_layers", 3),
      local_attention=hf.get("local_attention", 128),
      global_rope_theta=float(full.get("rope_theta", hf.get("global_rope_theta", 160000.0))),
      local_rope_theta=float(slide.get("rope_theta", hf.get("local_rope_theta", 10000.0))),
      hidden_activation=hf.get("hidden_activation", "gelu"),
      classifier_activation=hf.get("classifier_activation", "gelu"),
      classifier_pooling=hf.get("classifier_pooling", "cls"),
      pad_token_id=hf.get("pad_token_id", 50283),
      hidden_dropout=float(max(hf.get("embedding_dropout", 0.0), hf.get("mlp_dropout", 0.0))),
      attention_dropout=float(hf.get("attention_dropout", 0.0)),
      classifier_dropout=float(hf.get("classifier_dropout", 0.0)),
      initializer_range=hf.get("initializer_range", 0.02),
      num_labels=_num_labels(hf),
  )
  kw.update(overrides)
  return ModernBertConfig(**kw)


def _modernbert_config_to_hf(config: ModernBertConfig) -> dict[str, Any]:
  return {
      "architectures": [ARCHITECTURE["modernbert"]],
      "model_type": "modernbert",
      "vocab_size": config.vocab_size,
      "hidden_size": config.hidden_size,
      "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads,
      "intermediate_size": config.intermediate_size,
      "max_position_embeddings": config.max_position_embeddings,
      "norm_eps": config.norm_eps,
      "norm_bias": config.norm_bias,
      "attention_bias": config.attention_bias,
      "mlp_bias": config.mlp_bias,
      "classifier_bias": config.classifier_bias,
      "layer_types": list(config.kinds()),
      "global_attn_every_n_layers": config.global_attn_every_n_layers,
      "local_attention": config.local_attention,
      "rope_parameters": {
          "full_attention": {"rope_type": "default", "rope_theta": config.global_rope_theta},
          "sliding_attention": {"rope_type": "default", "rope_theta": config.local_rope_theta},
      },
      "global_rope_theta": config.global_rope_theta,  # transformers 4.x reads these two
      "local_rope_theta": config.local_rope_theta,
      "hidden_activation": config.hidden_activation,
      "classifier_activation": config.classifier_activation,
      "classifier_pooling": config.classifier_pooling,
      "pad_token_id": config.pad_token_id,
      "embedding_dropout": config.hidden_dropout,
      "mlp_dropout": config.hidden_dropout,
      "attention_dropout": config.attention_dropout,
      "classifier_dropout": config.classifier_dropout,
      "initializer_range": config.initializer_range,
      "num_labels": config.num_labels,
      "id2label": {str(i): f"LABEL_{i}" for i in range(config.num_labels)},
      "label2id": {f"LABEL_{i}": i for i in range(config.num_labels)},
      "torch_dtype": "float32",
  }


def config_to_hf(config, *, head: str = "default") -> dict[str, Any]:
  """Config -> config.json dict: the family's ARCHITECTURE (BERT / XLM-R *ForSequenceClassification,
  Qwen3ForCausalLM) or, head="seq_cls", Qwen3ForSequenceClassification."""
  if config.family == "qwen3":
    return _qwen3_config_to_hf(config, head)
  if head != "default":
    raise ValueError(f"head {head!r} not available for family {config.family!r}")
  if config.family == "modernbert":
    return _modernbert_config_to_hf(config)
  d = {
      "architectures": [ARCHITECTURE[config.family]],
      "model_type": MODEL_TYPE[config.family],
      "vocab_size": config.vocab_size,
      "hidden_size": config.hidden_size,
      "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads,
      "intermediate_size": config.intermediate_size,
      "hidden_act": config.hidden_act,
      "hidden_dropout_prob": config.hidden_dropout,
      "attention_probs_dropout_prob": config.attention_dropout,
      "classifier_dropout": config.classifier_dropout,
      "max_position_embeddings": config.max_position_embeddings,
      "type_vocab_size": config.type_vocab_size,
      "initializer_range": config.initializer_range,
      "layer_norm_eps": config.layer_norm_eps,
      "pad_token_id": config.pad_token_id,
      "position_embedding_type": "absolute",
      "num_labels": config.num_labels,
      "id2label": {str(i): f"LABEL_{i}" for i in range(config.num_labels)},
      "label2id": {f"LABEL_{i}": i for i in range(config.num_labels)},
      "torch_dtype": "float32",
  }
  if config.family == "xlm-roberta":
    d.update(bos_token_id=0, eos_token_id=2)
  return d


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Weights of an HF model directory as numpy: model.safetensors (single or sharded index) or
  pytorch_model.bin (torch.load with weights_only=True: no pickled code runs)."""
  st = os.path.join(path, "model.safetensors")
  index = os.path.join(path, "model.safetensors.index.json")
  binf = os.path.join(path, "pytorch_model.bin")
  if os.path.exists(st) or os.path.exists(index):
    from safetensors.numpy import load_file

    if os.path.exists(st):
      return dict(load_file(st))
    with open(index, encoding="utf-8") as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for shard in shards:
      out.update(load_file(os.path.join(path, shard)))
    return out
  if os.path.exists(binf):
    return _read_bin(binf)
  raise FileNotFoundError(f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {path}")


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
