"""The real entry point with a tiny random Qwen3 decoder reranker: sft -> rrpo -> eval -> export on
configs/smoke.py, model.init a Qwen3ForCausalLM directory built here (tokenizer from
test_reranker_qwen3), a real SmolLM2 reader. Nothing in the trainer knows the family."""

import json

import numpy as np
import pytest

from test_reranker_qwen3 import WORDS, tiny_tokenizer
from test_train_smoke import leaves, rrpo_params, run_main

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.mark.timeout(2000)  # the subprocess gets up to 1800 s on a loaded machine
def test_qwen3_smoke_end_to_end(tmp_path):
  tok = tiny_tokenizer()
  torch.manual_seed(0)
  cfg = transformers.Qwen3Config(
      vocab_size=len(WORDS),
      hidden_size=32,
      intermediate_size=64,
      num_hidden_layers=2,
      num_attention_heads=2,
      num_key_value_heads=1,
      head_dim=16,
      max_position_embeddings=128,
      tie_word_embeddings=True,
      pad_token_id=tok.pad_token_id,
  )
  init = tmp_path / "qwen3_init"
  transformers.Qwen3ForCausalLM(cfg).save_pretrained(str(init))
  tok.save_pretrained(str(init))
  workdir = tmp_path / "run"
  proc, seconds = run_main(
      workdir,
      "mode=sft,rrpo,eval,export",
      f"model.init={init}",
      "data.max_length=96",
      "data.buckets=(96,)",
      "sft.steps=2",
      f"reader.cache_path={tmp_path / 'cache.sqlite'}",
      timeout=1800,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  print(f"qwen3 smoke sft -> rrpo -> eval -> export: {seconds:.1f} s")
  assert "evaluation (step 2)" in proc.stdout and "exported rrpo step 2" in proc.stdout
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  rrpo = [r for r in rows if r["phase"] == "rrpo"]
  assert [r["step"] for r in rrpo] == [1, 2] and all(np.isfinite(r["loss"]) for r in rrpo)
  export = workdir / "export"
  assert json.loads((export / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]
  from rrpo_jax.reranker import Reranker  # pylint: disable=import-outside-toplevel

  reranker = Reranker.from_pretrained(str(export))
  assert reranker.config.family == "qwen3"
  for a, b in zip(leaves(reranker.params), leaves(rrpo_params(workdir, 2))):
    np.testing.assert_array_equal(np.asarray(a), b)
