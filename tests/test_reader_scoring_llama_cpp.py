"""Teacher-forced scoring in the in-process llama.cpp reader (the packaged SmolLM2), against a hand
computation with logits_all, and the likelihood reward through the real entry point."""

import json
import sqlite3

import numpy as np
import pytest

from rrpo_jax.reader import Passage, Request, make_reader
from test_train_smoke import run_main, smoke_run

REQUEST = Request(
    "q-eiffel",
    "When was the Eiffel Tower completed?",
    (
        Passage(
            "1",
            "Eiffel Tower",
            "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889 for the World's Fair.",
        ),
    ),
)


def _hand(reader, prompt, cont):
  """log p(cont_i | prompt, cont_<i) from a second model that keeps every position's logits."""
  import llama_cpp  # pylint: disable=import-outside-toplevel

  full = llama_cpp.Llama(model_path=reader.path, n_ctx=reader.n_ctx, logits_all=True, n_threads=2, verbose=False)
  try:
    full.eval(prompt + cont)
    lg = full.scores[len(prompt) - 1 : len(prompt) - 1 + len(cont)].astype(np.float64)
  finally:
    full.close()
  log_z = lg.max(1) + np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1))
  return lg[np.arange(len(cont)), cont] - log_z


@pytest.mark.parametrize("chat", ["", "false"])
def test_llama_cpp_scores_match_a_logits_all_hand_computation(chat):
  reader = make_reader({"backend": "llama_cpp", "max_tokens": 8, "n_ctx": 512, "chat": chat})
  try:
    got = reader.score([REQUEST, REQUEST], ["1889", "1925"])
    prompt = reader.prompt_tokens(reader.fit(REQUEST)[0])
    for text, scored in zip(["1889", "1925"], got):
      cont = reader._continuation(text)  # pylint: disable=protected-access
      assert scored.ok and len(scored.logprobs) == len(cont) >= 1
      np.testing.assert_allclose(scored.logprobs, _hand(reader, prompt, cont), atol=2e-3)
    assert got[0].mean_logprob > got[1].mean_logprob  # the reader knows the year
    # answering first leaves the prompt in the KV cache; scores after it are the same numbers
    responses, scores = reader.ask([REQUEST], answer=[True], continuations=[["1889", "1925"]])
    assert responses[0].ok and responses[0].text
    np.testing.assert_allclose([s.logprobs for s in scores[0]], [s.logprobs for s in got], atol=2e-3)
    # and answering after scoring gives the answer a fresh reader gives
    fresh = make_reader({"backend": "llama_cpp", "max_tokens": 8, "n_ctx": 512, "chat": chat})
    try:
      assert reader.answer([REQUEST])[0].raw == fresh.answer([REQUEST])[0].raw
    finally:
      fresh.close()
  finally:
    reader.close()


def test_a_continuation_that_cannot_fit_is_a_failed_score_not_a_zero():
  reader = make_reader({"backend": "llama_cpp", "max_tokens": 4, "n_ctx": 64})
  try:
    (scored,) = reader.score([REQUEST], ["word " * 80])
    assert not scored.ok and "n_ctx" in scored.error and scored.mean_logprob == float("-inf")
  finally:
    reader.close()


@pytest.mark.slow  # a subprocess run of the entry point with a real reader (answers from the smoke run's cache)
def test_smoke_run_with_the_likelihood_reward_logs_the_term(tmp_path, tmp_path_factory):
  # The smoke run's answers seed this run's cache (same config and devices: the same warm-up and
  # first rollout), so the reader mostly scores: the likelihood calls are what this test is about.
  _, smoke_cache, _ = smoke_run(tmp_path_factory)
  cache = tmp_path / "c.sqlite"
  src, dst = sqlite3.connect(smoke_cache), sqlite3.connect(cache)
  src.backup(dst)
  src.close()
  dst.close()
  workdir = tmp_path / "run"
  proc, _ = run_main(workdir, "mode=sft,rrpo", "reward.lambda_ll=1.0", f"reader.cache_path={cache}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  rrpo = [r for r in rows if r["phase"] == "rrpo"]
  assert [r["step"] for r in rrpo] == [1, 2]
  for r in rrpo:
    assert 0.0 < r["reward_likelihood"] <= 1.0 and 0.0 < r["value_likelihood"] <= 1.0
    assert r["reader_score_calls"] + r["reader_score_cache_hits"] == r["reader_score_requests"] > 0
    assert r["reader_score_failed"] == 0
