"""Rewards that see what the reader knows: answer extraction, the likelihood term q, score caching,
the group estimator and the reader-preference warm-up labels, each against a hand computation
(the fake reader scores a continuation's words at -1 / (1 + passages holding the word), -3 if none)."""

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrpo_jax.core import objective
from rrpo_jax.core import rewards
from rrpo_jax.data.example import Candidate, Example
from rrpo_jax.reader import (
    Passage,
    Request,
    ResponseCache,
    Scored,
    cache_key,
    make_reader,
    postprocess,
    response_as_score,
    score_as_response,
    score_key,
)
from rrpo_jax.train.scoring import ScoringStep
from rrpo_jax.train.sft import reader_labels


@pytest.mark.parametrize(
    "raw, answer",
    [
        ("[1]", ""),
        ("[4", ""),  # a marker cut by max_tokens
        ("[4] The Lion King (2019)", "The Lion King (2019)"),
        ("[1], [2]: Paris", "Paris"),
        ("[1]\n1889", "1889"),
        ("Answer: [2] 1889", "1889"),
        ("Question: who built it\nAnswer: Gustave Eiffel", "Gustave Eiffel"),
        ("Question: who built it", ""),
        ("Passage [1] says 1889", "Passage [1] says 1889"),  # not a leading marker
        ("\n  Answer: Paris.  \nmore", "Paris."),
        ("The answer to the question is:\n\n1889\nmore", "1889"),
    ],
)
def test_answer_extraction_strips_markers_and_echoed_scaffolding(raw, answer):
  assert postprocess(raw) == answer


def test_gold_aliases_rule_and_likelihood():
  assert rewards.gold_aliases(["The Beatles", "Beatles", " ", "the beatles!", "Lennon", "McCartney", "Starr"]) == [
      "The Beatles",
      "Lennon",
      "McCartney",
  ]
  assert rewards.gold_aliases("x" * 150) == ["x" * rewards.MAX_ALIAS_CHARS]
  assert rewards.likelihood([-4.3, -14.9]) == pytest.approx(math.exp(-4.3))
  assert rewards.likelihood([]) == 0.0 and rewards.likelihood([float("-inf")]) == 0.0
  assert 0.0 < rewards.likelihood([-50.0]) <= 1.0 and rewards.likelihood([0.0]) == 1.0
  # reader terms are opt-in: weight 0 unless configured, and never among the answer terms
  assert rewards.weights({"lambda_f": 1.0, "lambda_h": 1.0})["likelihood"] == 0.0
  assert "likelihood" not in rewards.answer_terms() and "likelihood" not in rewards.terms("a", ["a"])
  assert rewards.reader_terms({"likelihood": 0.0}) == [] and rewards.reader_terms({"likelihood": 0.5}) == ["likelihood"]


def _request(pids=("1", "2")):
  return Request("q1", "where?", tuple(Passage(p, f"t{p}", f"text {p}") for p in pids))


def test_answer_and_score_keys_never_collide_and_scores_round_trip(tmp_path):
  req = _request()
  keys = {cache_key("id", "h", req)} | {score_key("id", "h", req, c) for c in ("", "Paris", "1889")}
  keys |= {score_key("id2", "h", req, "Paris"), score_key("id", "h", _request(("2", "1")), "Paris")}
  assert len(keys) == 6
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  scored = Scored(logprobs=(-0.1, -2.345678901234567), prompt_tokens=12, latency_s=0.5)
  k = score_key("id", "h", req, "Paris")
  held = cache.store({k: (req, "id", score_as_response("Paris", scored))})
  back = response_as_score(held[k])
  assert back.logprobs == scored.logprobs and back.cached and back.mean_logprob == pytest.approx(-1.2228394506)
  # a failed score is never stored
  assert cache.put_many({"x": (req, "id", score_as_response("P", Scored(ok=False, error="boom")))}) == 0


def _example(qid, answers, titles_texts):
  cands = [Candidate(str(i), t, x, 0.0, False, None) for i, (t, x) in enumerate(titles_texts)]
  return Example(qid, f"question {qid}?", list(answers), cands, {})


class CountingFake:
  """The fake reader, counting its answer and score calls (and failing scores on request)."""

  def __init__(self, fail_scores=False):
    self.inner = make_reader({"backend": "fake", "max_tokens": 4})
    self.calls = collections.Counter()
    self.fail_scores = fail_scores
    self.template, self.identity, self.clean = self.inner.template, self.inner.identity, self.inner.clean

  def ask(self, requests, *, answer, continuations):
    self.calls["answers"] += sum(answer)
    self.calls["scores"] += sum(len(c) for c in continuations)
    responses, scores = self.inner.ask(requests, answer=answer, continuations=continuations)
    if self.fail_scores:
      scores = [[Scored(ok=False, error="x") for _ in s] for s in scores]
    return responses, scores

  def answer(self, requests):
    return self.ask(requests, answer=[True] * len(requests), continuations=[[] for _ in requests])[0]


def _fake_q(answer_words, passages_texts):
  """The fake reader's q for one alias: exp(mean over words of -1/(1+n) or -3)."""
  lps = []
  for w in answer_words:
    n = sum(w.lower() in t.lower() for t in passages_texts)
    lps.append(-1.0 / (1 + n) if n else -3.0)
  return math.exp(sum(lps) / len(lps))


def test_scoring_step_likelihood_term_against_a_hand_computation(tmp_path):
  ex = _example(
      "q1", ["Paris", "City of Light"], [("Louvre", "paris museum"), ("Paris", "the city of paris"), ("X", "y")]
  )
  texts = [c.text for c in ex.candidates]
  weights = {"em": 1.0, "f1": 1.0, "hit": 1.0, "likelihood": 2.0}
  reader = CountingFake()
  step = ScoringStep(reader, ResponseCache(str(tmp_path / "c.sqlite")), weights=weights)
  assert step.term_names == ["em", "f1", "hit", "likelihood"]
  res = step.score([ex], np.array([[1, 0]]), np.array([[2, 1]]))
  # policy prefix 1 = [X]: answer "X"; prefix 2 = [X, Paris]: answer "Paris"
  q_pol = [
      max(_fake_q(["Paris"], texts[2:3]), _fake_q("City of Light".split(), texts[2:3])),
      max(_fake_q(["Paris"], [texts[2], texts[1]]), _fake_q("City of Light".split(), [texts[2], texts[1]])),
  ]
  np.testing.assert_allclose(res.terms["reward_likelihood"][0], q_pol, rtol=1e-6)
  np.testing.assert_allclose(res.rewards[0], [0 + 2 * q_pol[0], 3 + 2 * q_pol[1]], rtol=1e-6)
  q_ref = [
      _fake_q(["Paris"], texts[1:2]),
      max(_fake_q(["Paris"], texts[1::-1]), _fake_q("City of Light".split(), texts[1::-1])),
  ]
  np.testing.assert_allclose(res.terms["value_likelihood"][0], q_ref, rtol=1e-6)
  assert res.stats["score_requests"] == 8 and res.stats["score_calls"] == 8 and reader.calls["scores"] == 8
  assert bool(res.ok[0])
  # the same prefixes again in a new step (fresh memo): every answer and score comes from the cache
  step2 = ScoringStep(reader, ResponseCache(str(tmp_path / "c.sqlite")), weights=weights)
  res2 = step2.score([ex], np.array([[1, 0]]), np.array([[2, 1]]))
  np.testing.assert_array_equal(res2.rewards, res.rewards)
  assert res2.stats["score_cache_hits"] == 8 and res2.stats["score_calls"] == 0 and reader.calls["scores"] == 8


def test_weight_zero_asks_no_scores_and_keeps_todays_terms(tmp_path):
  ex = _example("q1", ["Paris"], [("Louvre", "paris museum"), ("Paris", "the city of paris")])
  reader = CountingFake()
  step = ScoringStep(reader, None, weights=rewards.weights({"lambda_f": 1.0, "lambda_h": 1.0, "lambda_ll": 0.0}))
  res = step.score([ex], np.array([[1, 0]]), np.array([[0, 1]]))
  assert reader.calls["scores"] == 0 and res.stats["score_requests"] == 0
  assert sorted(res.terms) == sorted(f"{s}_{t}" for s in ("reward", "value") for t in ("em", "f1", "hit"))
  expected = [rewards.reward(a, ["Paris"]).total for a in ("Louvre", "Paris")]
  np.testing.assert_allclose(res.rewards[0], expected)


def test_a_failed_score_carries_no_signal():
  ex = _example("q1", ["Paris"], [("Louvre", "paris museum"), ("Paris", "the city of paris")])
  step = ScoringStep(CountingFake(fail_scores=True), None, weights={"em": 1, "f1": 1, "hit": 1, "likelihood": 1})
  res = step.score([ex, None], np.array([[1, 0], [-1, -1]]), np.array([[0, 1], [-1, -1]]))
  assert res.ok.tolist() == [False, False] and res.stats["failed_queries"] == 1 and res.stats["score_failed"] == 4


def test_group_loo_against_a_hand_computation():
  rng = np.random.default_rng(0)
  r = rng.normal(size=(3, 4, 3)).astype(np.float32)  # [B, G, k]
  v = np.broadcast_to(rng.normal(size=(3, 1, 3)), r.shape).astype(np.float32)
  gamma = 0.9
  got = np.asarray(objective.advantages(r, v, kind="group_loo", gamma=gamma))

  def ret(x):
    return np.array([sum(gamma ** (j - t) * x[j] for j in range(t, len(x))) for t in range(len(x))])

  for b in range(3):
    rets = [ret(r[b, g]) for g in range(4)]
    for g in range(4):
      baseline = (sum(rets[h] for h in range(4) if h != g) + ret(v[b, 0])) / 4
      np.testing.assert_allclose(got[b, g], rets[g] - baseline, rtol=1e-5, atol=1e-6)
  # one sample per question: the reference-difference return
  one = objective.advantages(r[:, :1], v[:, :1], kind="group_loo", gamma=gamma)
  np.testing.assert_allclose(one, objective.advantages(r[:, :1], v[:, :1], kind="ref_diff_return", gamma=gamma))
  # invalid (suffix) steps are 0 and do not enter the returns
  where = np.ones(r.shape, bool)
  where[..., 2] = False
  masked = np.asarray(objective.advantages(r, v, kind="group_loo", gamma=gamma, where=where))
  assert (masked[..., 2] == 0).all()
  np.testing.assert_allclose(
      masked[..., :2], objective.advantages(r[..., :2], v[..., :2], kind="group_loo", gamma=gamma), rtol=1e-6
  )


def test_grouped_update_matches_flat_episodes_oracle():
  """G samples per question in the update: the loss equals the clipped objective computed by hand
  over the B*G episodes with the group_loo advantages (scores of a linear scorer, one device)."""
  from rrpo_jax.core import plackett_luce
  from rrpo_jax.core import sharding  # pylint: disable=import-outside-toplevel
  from rrpo_jax.core import update as update_lib  # pylint: disable=import-outside-toplevel

  b, g, n, k, f = 2, 3, 5, 2, 4
  rng = np.random.default_rng(1)
  feats = rng.normal(size=(b, n, f)).astype(np.float32)
  params = {"w": jnp.asarray(rng.normal(size=(f,)).astype(np.float32))}
  apply_fn = lambda p, inputs, key=None: jnp.einsum("bnf,f->bn", inputs["x"], p["w"])  # noqa: E731
  where = np.ones((b, n), bool)
  actions = np.stack([np.stack([rng.permutation(n)[:k] for _ in range(g)]) for _ in range(b)]).astype(np.int32)
  rewards_ = rng.integers(0, 2, size=(b, g, k)).astype(np.float32)
  values = rng.integers(0, 2, size=(b, k)).astype(np.float32)
  scores = np.asarray(apply_fn(params, {"x": feats}))
  ref_lp = np.asarray(
      plackett_luce.log_prob(np.broadcast_to(scores[:, None], (b, g, n)) + 0.1, actions, where=where[:, None])
  )
  dp = sharding.DataParallel("shard_map", devices=jax.devices()[:1])
  tx = update_lib.make_optimizer(learning_rate=0.0, total_steps=1)
  settings = update_lib.RRPOConfig(
      advantage="group_loo", gamma=1.0, clip_eps=0.2, beta=0.05, kl_estimator="k3", standardize="none"
  )
  update = update_lib.make_update_step(apply_fn, tx, dp, settings)
  batch = update_lib.RolloutBatch(
      inputs={"x": feats},
      where=where,
      actions=actions,
      ref_log_prob=ref_lp,
      rewards=rewards_,
      values=values,
      query_mask=np.ones((b,), bool),
  )
  state = dp.replicate(update_lib.TrainState.create(params, tx, window_capacity=64))
  _, m = update(state, dp.shard(batch), jax.random.key(0))
  adv = np.asarray(objective.advantages(rewards_, np.broadcast_to(values[:, None], rewards_.shape), kind="group_loo"))
  lp = np.asarray(plackett_luce.log_prob(np.broadcast_to(scores[:, None], (b, g, n)), actions, where=where[:, None]))
  ratio = np.exp(lp - ref_lp)
  surr = np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv)
  kl = np.expm1(-(lp - ref_lp)) + (lp - ref_lp)
  expected = -(surr.mean() - 0.05 * kl.mean())
  assert float(m["loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
  assert float(m["valid_steps"]) == b * g * k


def test_reader_preference_labels_and_warm_up_loss_against_hand_computations():
  import rax  # pylint: disable=import-outside-toplevel

  exs = [
      _example("q1", ["Paris"], [("a", "nothing"), ("b", "paris here"), ("c", "Paris and paris")]),
      _example("q2", [], [("a", "x"), ("b", "y")]),  # no gold answer: no labels
      None,
  ]
  step = ScoringStep(CountingFake(), None)
  labels = reader_labels(step, exs, 3, temperature=0.5)
  # one passage a request: n = 1 for the passages holding "paris", else 0
  log_q = np.array([-3.0, -0.5, -0.5])
  z = np.exp(log_q / 0.5 - (log_q / 0.5).max())
  np.testing.assert_allclose(labels[0], z / z.sum(), rtol=1e-6)
  assert (labels[1] == 0).all() and (labels[2] == 0).all()
  # the warm-up loss with these labels is the cross-entropy H(y, softmax(s))
  s = np.array([[0.3, -1.0, 2.0]], np.float32)
  loss = float(rax.softmax_loss(jnp.asarray(s), jnp.asarray(labels[:1]), reduce_fn=None)[0])
  expected = -(labels[0] * (s[0] - np.log(np.exp(s[0]).sum()))).sum()
  assert loss == pytest.approx(expected, rel=1e-5)


def test_evaluation_adds_the_q_column_and_its_comparisons():
  from rrpo_jax.train import evaluation  # pylint: disable=import-outside-toplevel
  from rrpo_jax.reader import Response  # pylint: disable=import-outside-toplevel

  exs = [_example(f"q{i}", ["Paris"], [("Paris", "paris"), ("B", "nothing")]) for i in range(4)]
  orders = {"retriever": [[1, 0]] * 4, "reference": [[0, 1]] * 4}
  step = ScoringStep(CountingFake(), None)

  def likelihood_fn(requests, answers):
    return step.answer_and_likelihood(requests, answers, generate=False)[1]

  out = evaluation.evaluate(
      exs,
      orders,
      answer_fn=lambda reqs: [Response(text="x") for _ in reqs],
      k=1,
      likelihood_fn=likelihood_fn,
      resamples=200,
  )
  q_hit, q_miss = math.exp(-0.5), math.exp(-3.0)
  assert out["per_query"]["reference"][0]["q"] == pytest.approx(q_hit)
  assert out["systems"]["retriever"]["q"] == pytest.approx(100 * q_miss)
  assert out["comparisons"]["reference-retriever"]["q"]["diff"] == pytest.approx(100 * (q_hit - q_miss))
  text = evaluation.table(out)
  assert " q" in text.splitlines()[0] and "q +" in text
  assert "reference_q" in evaluation.flat_metrics(out)


def test_weight_zero_scores_exactly_as_a_registry_without_the_term(monkeypatch):
  """lambda_ll = 0 is today's reward: the same arrays, terms and stats (less the zero score counters)
  as a scoring step built when no reader term was registered."""
  exs = [
      _example("q1", ["Paris"], [("Louvre", "paris museum"), ("Paris", "the city of paris"), ("X", "y")]),
      _example("q2", ["1889"], [("Eiffel", "built 1889"), ("Other", "no")]),
  ]
  ref, act = np.array([[1, 0], [0, 1]]), np.array([[2, 1], [1, 0]])
  weights = rewards.weights({"lambda_f": 1.0, "lambda_h": 1.0, "lambda_ll": 0.0})
  with_term = ScoringStep(CountingFake(), None, weights=weights).score(exs, ref, act)
  registry = rewards.Registry("reward term")
  for name, term in rewards.TERMS.items():
    if not term.needs_reader:
      registry.register(name, term)
  monkeypatch.setattr(rewards, "TERMS", registry)
  without = ScoringStep(CountingFake(), None, weights={k: v for k, v in weights.items() if k != "likelihood"})
  before = without.score(exs, ref, act)
  np.testing.assert_array_equal(with_term.rewards, before.rewards)
  np.testing.assert_array_equal(with_term.values, before.values)
  assert with_term.terms.keys() == before.terms.keys()
  for key in before.terms:
    np.testing.assert_array_equal(with_term.terms[key], before.terms[key])
  assert with_term.answers == before.answers and with_term.ok.tolist() == before.ok.tolist()
  counts = lambda stats: {k: v for k, v in stats.items() if not k.startswith("score_") and k != "reader_seconds"}  # noqa: E731
  assert counts(with_term.stats) == counts(before.stats)


@pytest.mark.slow
def test_trainer_with_group_samples_and_the_group_estimator(tmp_path):
  """G = 2 samples per question through the real entry point (fake reader, 2 devices): the grouped
  rollout, the group_loo advantages and the tied-group count in every RRPO metrics row; then the
  held-out evaluation with the q column (eval.likelihood) and its progress bar."""
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel

  from test_train_smoke import ROOT, env_for, main_cmd  # pylint: disable=import-outside-toplevel

  workdir = tmp_path / "run"
  cmd = main_cmd(
      workdir,
      "mode=rrpo,eval",
      "eval.likelihood=True",
      "reader.backend=fake",
      f"reader.cache_path={tmp_path / 'c.sqlite'}",
      "rrpo.samples=2",
      "rrpo.selection=sample",
      "rrpo.advantage=group_loo",
      "model.dropout=0.0",
  )
  proc = subprocess.run(cmd, cwd=ROOT, env=env_for(2), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  rrpo = [r for r in rows if r["phase"] == "rrpo"]
  assert [r["step"] for r in rrpo] == [1, 2]
  for r in rrpo:
    assert 0.0 <= r["tied_group_frac"] <= 1.0 and r["reader_queries"] == 2 * 2  # batch 2 x G 2 episodes
    assert np.isfinite(r["loss"]) and r["valid_steps"] <= 2 * 2 * 2
  results = json.loads((workdir / "results.json").read_text())
  for name, metrics in results["systems"].items():
    assert 0.0 < metrics["q"] <= 100.0, name
  assert "q" in results["comparisons"]["policy-reference"]
  assert "eval likelihood" in proc.stderr
