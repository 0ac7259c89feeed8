"""Qwen3 reranker end to end with a tokenizer built in tests/tiny.py (no hub): the prompt template, left padding
and buckets, loading HF directories (single and sharded safetensors), and exports that load in
transformers (Qwen3ForCausalLM, Qwen3ForSequenceClassification) and sentence-transformers."""

import json
import os

import numpy as np
import pytest

from rrpo_jax.models.reranker import Reranker
from rrpo_jax.models.tokenization import (
    QWEN3_DEFAULT_INSTRUCTION,
    QWEN3_RERANKER_PREFIX,
    QWEN3_RERANKER_SUFFIX,
    PromptEncoder,
    join_title,
    qwen3_body,
)
import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

QUERY = "who wrote hamlet"
PASSAGES = [
    ("Hamlet", "hamlet is a tragedy by shakespeare"),
    ("", "paris is the capital of france"),
    ("", "the city " * 40),
    "a plain string passage",
]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A tiny random Qwen3ForCausalLM (untied head, 256 positions; weights N(0, 0.2), norms 1 + N(0, 0.1))
  and the tokenizer, saved as a sharded HF directory."""
  tok = tiny.qwen3_tokenizer()
  cfg = tiny.qwen3_config(len(tiny.QWEN3_WORDS), pad_token_id=tok.pad_token_id, tied=False, max_position_embeddings=256)
  model = tiny.random_model(transformers.Qwen3ForCausalLM, cfg, seed=0, scale=0.2)
  path = str(tmp_path_factory.mktemp("tiny_qwen3"))
  model.save_pretrained(path, max_shard_size="40KB")  # several shards + model.safetensors.index.json
  tok.save_pretrained(path)
  assert os.path.exists(os.path.join(path, "model.safetensors.index.json"))
  return path, model, tok


def hf_scores(model, tok, encoder, query, passages):
  """HF's logit(yes) - logit(no) at the last position of our prompts, left padded by the tokenizer."""
  ids, _ = encoder.tokenize([query] * len(passages), passages)
  tok.padding_side = "left"
  batch = tok.pad({"input_ids": ids}, return_tensors="pt")
  with torch.no_grad():
    z = model(**batch).logits[:, -1]
  yes, no = tok.convert_tokens_to_ids(["yes", "no"])
  return (z[:, yes] - z[:, no]).numpy()


def test_prompt_template_left_padding_and_buckets():
  tok = tiny.qwen3_tokenizer()
  enc = PromptEncoder(tok, max_length=128, buckets=(80, 96))
  assert enc.buckets == (80, 96, 128) and enc.instruction == QWEN3_DEFAULT_INSTRUCTION
  pre, suf = (tok.encode(t, add_special_tokens=False) for t in (QWEN3_RERANKER_PREFIX, QWEN3_RERANKER_SUFFIX))
  ids, types = enc.tokenize([QUERY] * 2, PASSAGES[:2])
  body = tok.encode(qwen3_body(QWEN3_DEFAULT_INSTRUCTION, QUERY, PASSAGES[0]), add_special_tokens=False)
  assert ids[0] == pre + body + suf and set(types[0]) == {0}
  assert "<Document>: Hamlet. hamlet is" in qwen3_body("i", "q", PASSAGES[0])  # "title. text"
  # A long passage is cut at its end: exactly max_length tokens, still ending with the suffix.
  long_ids, _ = enc.tokenize([QUERY], [PASSAGES[2]])
  assert len(long_ids[0]) == 128 and long_ids[0][-len(suf) :] == suf and long_ids[0][: len(pre)] == pre
  # [B, n, L]: left padding, L = the smallest bucket >= the longest prompt, missing slots empty.
  out = enc.encode([QUERY, "paris"], [PASSAGES[:2], [PASSAGES[3]]], n=3)
  lengths = [len(x) for x in enc.tokenize([QUERY, QUERY, "paris"], PASSAGES[:2] + [PASSAGES[3]])[0]]
  length = out["input_ids"].shape[-1]
  assert out["input_ids"].shape == (2, 3, length) and length == enc.bucket(max(lengths)) and length == 80
  np.testing.assert_array_equal(out["where"], [[True, True, False], [True, False, False]])
  for (b, j), n_tok in zip([(0, 0), (0, 1), (1, 0)], lengths):
    mask = out["attention_mask"][b, j]
    np.testing.assert_array_equal(mask, np.arange(length) >= length - n_tok)  # left padding
    assert (out["input_ids"][b, j][mask == 0] == tok.pad_token_id).all()
  assert out["attention_mask"][1, 1:].sum() == 0 and out["token_type_ids"].sum() == 0
  custom = PromptEncoder(tok, max_length=128, instruction="Find the passage about plays")
  assert custom.tokenize([QUERY], ["x"])[0][0] != ids[0]
  with pytest.raises(ValueError, match="no room"):
    PromptEncoder(tok, max_length=len(pre) + len(suf))


def test_load_sharded_hf_dir_score_and_rank(hf_dir):
  path, model, tok = hf_dir
  r = Reranker.from_pretrained(path, max_length=96, batch_size=2)
  assert r.config.family == "qwen3" and not r.config.tie_word_embeddings
  assert r.load_report.missing == [] and r.load_report.unexpected == []
  assert (r.config.yes_id, r.config.no_id) == tuple(tok.convert_tokens_to_ids(["yes", "no"]))
  assert isinstance(r.encoder, PromptEncoder)
  got = r.score(QUERY, PASSAGES)  # sorted length chunks of 2, each padded to its own length
  np.testing.assert_allclose(got, hf_scores(model, tok, r.encoder, QUERY, PASSAGES), atol=1e-5, rtol=0)
  assert [i for i, _ in r.rank(QUERY, PASSAGES)] == list(np.argsort(-got, kind="stable"))
  # The trainer's apply_fn on [B, N, L] inputs = score_pairs.
  inputs = r.encoder.encode([QUERY], [PASSAGES], n=4)
  np.testing.assert_allclose(r.apply(r.params, inputs)[0], got, atol=1e-5, rtol=0)


def test_exports_load_in_transformers_and_cross_encoder(hf_dir, tmp_path):
  path, model, tok = hf_dir
  r = Reranker.from_pretrained(path, max_length=96, instruction="Find the passage about plays")
  ref = r.score(QUERY, PASSAGES)
  # Qwen3ForCausalLM directory: transformers loads it with nothing missing, same scores; so do we.
  out = str(tmp_path / "causal")
  r.save_pretrained(out, training="a unit test")
  with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
    assert json.load(f)["architectures"] == ["Qwen3ForCausalLM"]
  lm, info = transformers.Qwen3ForCausalLM.from_pretrained(out, output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  np.testing.assert_allclose(hf_scores(lm.eval(), tok, r.encoder, QUERY, PASSAGES), ref, atol=1e-5, rtol=0)
  back = Reranker.from_pretrained(out)
  assert back.encoder.instruction == "Find the passage about plays" and back.encoder.max_length == 96
  np.testing.assert_allclose(back.score(QUERY, PASSAGES), ref, atol=1e-6, rtol=0)
  # Qwen3ForSequenceClassification: one row, yes - no; right padding (the tokenizer's default) works.
  seq = str(tmp_path / "seq_cls")
  r.save_pretrained(seq, head="seq_cls")
  clf, info = transformers.AutoModelForSequenceClassification.from_pretrained(seq, output_loading_info=True)
  assert type(clf).__name__ == "Qwen3ForSequenceClassification"
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  ids, _ = r.encoder.tokenize([QUERY] * len(PASSAGES), PASSAGES)
  tok.padding_side = "right"
  with torch.no_grad():
    logits = clf.eval()(**tok.pad({"input_ids": ids}, return_tensors="pt")).logits[:, 0].numpy()
  np.testing.assert_allclose(logits, ref, atol=1e-5, rtol=0)
  st = pytest.importorskip("sentence_transformers")
  ce = st.CrossEncoder(seq, device="cpu")
  head = QWEN3_RERANKER_PREFIX + "<Instruct>: Find the passage about plays\n<Query>: " + QUERY + "\n"
  pairs = [(head, "<Document>: " + join_title(p) + QWEN3_RERANKER_SUFFIX) for p in PASSAGES[:2] + PASSAGES[3:]]
  got = ce.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=4)
  np.testing.assert_allclose(got, ref[[0, 1, 3]], atol=1e-5, rtol=0)
  with pytest.raises(ValueError, match="CausalLM"):
    Reranker.from_pretrained(seq)


def test_instruction_from_the_config(hf_dir, tmp_path):
  """config.model.instruction reaches the prompts through the trainer's model builder, is saved with the
  model, and is refused for a family without prompts."""
  from rrpo_jax import config as config_lib
  from rrpo_jax.train import restore
  from rrpo_jax.errors import ConfigError

  path, _, _ = hf_dir
  c = config_lib.get_config()
  c.model.init, c.data.max_length, c.data.buckets = path, 96, (96,)
  assert restore.build_reranker(c).encoder.instruction == QWEN3_DEFAULT_INSTRUCTION
  c.model.instruction = "Find the passage about plays"
  r = restore.build_reranker(c)
  assert r.encoder.instruction == c.model.instruction
  ids, _ = r.encoder.tokenize([QUERY], [PASSAGES[0]])
  custom = PromptEncoder(r.tokenizer, max_length=96, instruction=c.model.instruction)
  assert ids == custom.tokenize([QUERY], [PASSAGES[0]])[0]
  assert ids != PromptEncoder(r.tokenizer, max_length=96).tokenize([QUERY], [PASSAGES[0]])[0]
  r.save_pretrained(str(tmp_path / "saved"))
  assert Reranker.from_pretrained(str(tmp_path / "saved"), max_length=96).encoder.instruction == c.model.instruction
  c.model.init = "random"  # a BERT cross-encoder: no prompt to put an instruction in
  with pytest.raises(ConfigError, match="model.instruction"):
    restore.build_reranker(c)
  c.model.instruction = ""
  restore.build_reranker(c).save_pretrained(str(tmp_path / "bert"))
  c.model.init, c.model.instruction = str(tmp_path / "bert"), "x"
  with pytest.raises(ConfigError, match="model.instruction"):
    restore.build_reranker(c)
