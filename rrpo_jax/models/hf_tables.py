"""Hugging Face <-> Flax weight names, one declarative table per family (models/cross_encoder.py, modernbert.py, qwen3.py).

A row is (HF state-dict name, Flax parameter path, kind, in base model?). Kinds: "dense" (a torch
Linear weight [out, in] is the Flax kernel [in, out] transposed), "copy" (same array: biases,
LayerNorm weight -> scale, embeddings). `{i}` in a row stands for the layer index. HF names are
stored without the base-model prefix (PREFIX: "bert." / "roberta." / "model."), which is added on
export and optional on import (plain encoders such as BertModel checkpoints have none); head rows
(in base model = False) are never prefixed. rows_for(config) is the rows a config's parameter tree
has; the loading and saving that reads the tables is hf_io.py.
"""

from __future__ import annotations

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
HEAD_PATHS = {"bert": ("classifier",), "xlm-roberta": ("classifier_dense", "classifier_out")}
# Buffers, not weights: never reported.
IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids", "rotary_emb.inv_freq")


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
