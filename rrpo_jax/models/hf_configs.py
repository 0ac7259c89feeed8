"""Hugging Face config.json <-> our model configs (CrossEncoderConfig, ModernBertConfig,
Qwen3RerankerConfig), per family: config_from_hf reads what each family's HF config names,
refusing the variants our models do not implement; config_to_hf writes what transformers reads
back (ARCHITECTURE: the class a saved directory loads as).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from rrpo_jax.models.cross_encoder import CrossEncoderConfig
from rrpo_jax.models.modernbert import ModernBertConfig
from rrpo_jax.models.qwen3 import Qwen3RerankerConfig
from rrpo_jax.registry import one_of

ARCHITECTURE = {
    "bert": "BertForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "qwen3": "Qwen3ForCausalLM",
    "modernbert": "ModernBertForSequenceClassification",
}
SEQ_CLS_ARCHITECTURE = {"qwen3": "Qwen3ForSequenceClassification"}  # families whose default is not one
MODEL_TYPE = {"bert": "bert", "xlm-roberta": "xlm-roberta", "qwen3": "qwen3", "modernbert": "modernbert"}


def config_from_hf(hf: Mapping[str, Any], **overrides: Any):
  """An HF config.json dict -> the config of the family its model_type names (FROM_HF):
  CrossEncoderConfig (bert / xlm-roberta / roberta), ModernBertConfig (modernbert) or
  Qwen3RerankerConfig (qwen3); `overrides` replace fields (dtype=, remat=, ...)."""
  model_type = hf.get("model_type", "bert")
  if model_type not in FROM_HF:
    raise ValueError(f"unsupported model_type {model_type!r}: expected {one_of(FROM_HF)}")
  return FROM_HF[model_type](hf, **overrides)


def config_to_hf(config, *, head: str = "default") -> dict[str, Any]:
  """Config -> config.json dict (TO_HF): the family's ARCHITECTURE (BERT / XLM-R / ModernBERT
  *ForSequenceClassification, Qwen3ForCausalLM) or, head="seq_cls", SEQ_CLS_ARCHITECTURE's."""
  if head != "default" and config.family not in SEQ_CLS_ARCHITECTURE:
    raise ValueError(f"head {head!r} not available for family {config.family!r}")
  return TO_HF[config.family](config, head)


def _cross_encoder_config_from_hf(hf: Mapping[str, Any], **overrides: Any) -> CrossEncoderConfig:
  family = "bert" if hf.get("model_type", "bert") == "bert" else "xlm-roberta"
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"position_embedding_type {hf['position_embedding_type']!r} is not supported")
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
      num_labels=_num_labels(hf),
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


def _modernbert_config_to_hf(config: ModernBertConfig, head: str) -> dict[str, Any]:
  del head  # "default" only
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


def _cross_encoder_config_to_hf(config: CrossEncoderConfig, head: str) -> dict[str, Any]:
  del head  # "default" only
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


# config.json "model_type" -> its reader, family -> its writer: a new family adds one entry to each.
FROM_HF: dict[str, Callable[..., Any]] = {
    "bert": _cross_encoder_config_from_hf,
    "xlm-roberta": _cross_encoder_config_from_hf,
    "roberta": _cross_encoder_config_from_hf,
    "qwen3": _qwen3_config_from_hf,
    "modernbert": _modernbert_config_from_hf,
}
TO_HF: dict[str, Callable[[Any, str], dict[str, Any]]] = {
    "bert": _cross_encoder_config_to_hf,
    "xlm-roberta": _cross_encoder_config_to_hf,
    "qwen3": _qwen3_config_to_hf,
    "modernbert": _modernbert_config_to_hf,
}
