"""The real entry point with a tiny random Qwen3 decoder reranker: sft -> rrpo -> eval -> export on
configs/smoke.py, model.init a Qwen3ForCausalLM directory built here (model and tokenizer from
tests/tiny.py), a real SmolLM2 reader. Nothing in the trainer knows the family."""

import json

import numpy as np
import pytest

from test_train_smoke import leaves, rrpo_params, run_main
import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.mark.slow  # a subprocess run of the entry point with a real reader: 147 s on a busy 2-core machine
@pytest.mark.timeout(2000)  # the subprocess gets up to 1800 s on a loaded machine
def test_qwen3_smoke_end_to_end(tmp_path):
  tok = tiny.qwen3_tokenizer()
  # Smaller than tiny.QWEN3 (hidden 32, 2 query / 1 kv heads); HF's own init.
  cfg = tiny.qwen3_config(
      len(tiny.QWEN3_WORDS),
      pad_token_id=tok.pad_token_id,
      hidden_size=32,
      intermediate_size=64,
      num_attention_heads=2,
      num_key_value_heads=1,
  )
  init = tmp_path / "qwen3_init"
  tiny.random_model(transformers.Qwen3ForCausalLM, cfg, seed=0).save_pretrained(str(init))
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
  from rrpo_jax.models.reranker import Reranker  # pylint: disable=import-outside-toplevel

  reranker = Reranker.from_pretrained(str(export))
  assert reranker.config.family == "qwen3"
  for a, b in zip(leaves(reranker.params), leaves(rrpo_params(workdir, 2))):
    np.testing.assert_array_equal(np.asarray(a), b)
