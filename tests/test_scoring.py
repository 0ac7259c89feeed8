"""The scoring step with a scripted reader: prefixes, dedup, cache, memo, -1 slots, accounting."""

import dataclasses

import numpy as np
import pytest

from rrpo_jax.train import evaluation
from rrpo_jax.train import scoring
from rrpo_jax.reader import Reader, ReaderUnavailableError, Response, ResponseCache, postprocess
from rrpo_jax.reader.prompts import PromptTemplate


@dataclasses.dataclass
class Cand:
  pid: str
  title: str
  text: str
  has_answer: bool = False


@dataclasses.dataclass
class Ex:
  qid: str
  question: str
  answers: list
  candidates: list


class LastTitleReader(Reader):
  """Answers with the title of the last passage it is shown; records every request."""

  backend = "scripted"

  def __init__(self, fail_titles=(), malformed_titles=()):
    super().__init__(template=PromptTemplate(), max_tokens=4, postprocess=postprocess)
    self.log, self.batches = [], []
    self.fail_titles, self.malformed_titles = set(fail_titles), set(malformed_titles)

  def _settings(self):
    return {"model": "last-title"}

  def _complete(self, requests):
    self.batches.append(len(requests))
    out = []
    for r in requests:
      self.log.append(r)
      title = r.passages[-1].title
      if title in self.fail_titles:
        raise ReaderUnavailableError("scripted outage")
      if title in self.malformed_titles:
        out.append(Response(text="", malformed=True, error="scripted"))
      else:
        raw = f"{title}\nsecond line"
        out.append(Response(text="", raw=raw, prompt_tokens=10 * len(r.passages), completion_tokens=2))
    return out


def make_example(qid, gold="Paris", n=5):
  # Candidate j has title "city<j>", except candidate 2 which is titled with the gold answer.
  cands = [Cand(f"{qid}-p{j}", gold if j == 2 else f"city{j}", f"text {j}") for j in range(n)]
  return Ex(qid, f"question {qid}?", [gold, "another answer"], cands)


def test_rewards_and_values_hand_checked():
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader, lambda_f=1.0, lambda_h=1.0)
  ex = [make_example("a"), make_example("b")]
  ref = np.array([[2, 0, 1], [0, 1, 3]], np.int32)
  act = np.array([[0, 2, 4], [1, 0, -1]], np.int32)
  res = step.score(ex, ref, act)
  # The answer at step t is the title of pick t; only candidate 2 is "Paris": R = EM + F1 + hit = 3.
  np.testing.assert_array_equal(res.values, [[3, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(res.rewards, [[0, 3, 0], [0, 0, 0]])
  np.testing.assert_array_equal(res.terms["reward_em"], [[0, 1, 0], [0, 0, 0]])
  np.testing.assert_array_equal(res.terms["value_hit"], [[1, 0, 0], [0, 0, 0]])
  assert res.rewards.dtype == np.float32 and res.values.shape == (2, 3)
  assert res.ok.tolist() == [True, True] and res.stats["failed_queries"] == 0
  assert res.answers[0] == ["city0", "Paris", "city4"] and res.answers[1] == ["city1", "city0"]
  # Prefixes: ref 3 + 3, policy 3 + 2 = 11; shared: none (first picks differ everywhere).
  assert res.stats["prefixes"] == 11 and res.stats["reader_calls"] == 11
  assert res.stats["prompt_tokens"] == 10 * (1 + 2 + 3) * 3 + 10 * (1 + 2)
  assert res.stats["completion_tokens"] == 2 * 11


def test_prefix_requests_are_adjacent_and_ordered_per_query():
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader)
  ex = [make_example("a"), make_example("b")]
  step.score(ex, np.array([[0, 1, 2], [3, 4, 0]]), np.array([[4, 3, 2], [1, 2, 0]]))
  assert reader.batches == [12]  # one reader batch per step
  assert [r.qid for r in reader.log] == ["a"] * 6 + ["b"] * 6
  assert [len(r.passages) for r in reader.log] == [1, 2, 3] * 4
  assert reader.log[2].pids == ("a-p0", "a-p1", "a-p2")  # the ordered reference prefix


def test_policy_equal_to_reference_costs_k_calls_then_nothing():
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader)
  ex = [make_example("a")]
  top = np.array([[2, 0, 1]])
  res = step.score(ex, top, top)
  assert res.stats["prefixes"] == 6 and res.stats["unique_requests"] == 3 and res.stats["reader_calls"] == 3
  np.testing.assert_array_equal(res.rewards, res.values)
  # Second epoch: reference values from the memo; the policy prefixes need the reader again
  # (no persistent cache here), the reference none.
  res = step.score(ex, top, top)
  assert res.stats["value_memo_hits"] == 1 and res.stats["reader_calls"] == 3
  np.testing.assert_array_equal(res.values, [[3, 0, 0]])


def test_with_cache_a_repeated_epoch_calls_nobody(tmp_path):
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader, ResponseCache(str(tmp_path / "c.sqlite")))
  ex = [make_example("a"), make_example("b")]
  ref, act = np.array([[2, 0, 1], [0, 1, 2]]), np.array([[2, 1, 0], [4, 3, 2]])
  first = step.score(ex, ref, act)
  assert first.stats["reader_calls"] == 3 + 2 + 3 + 3  # "a" shares its first prefix [2]
  again = step.score(ex, ref, act)
  assert again.stats["reader_calls"] == 0 and again.stats["value_memo_hits"] == 2
  assert again.stats["cache_hits"] == 3 + 3 and again.stats["cache_hit_rate"] == 1.0
  np.testing.assert_array_equal(first.rewards, again.rewards)
  np.testing.assert_array_equal(first.values, again.values)
  # A new step (fresh memo) over the same cache: still no reader call.
  fresh = scoring.ScoringStep(reader, step.cache)
  assert fresh.score(ex, ref, act).stats["reader_calls"] == 0
  total = step.run_stats()
  assert total["queries"] == 4 and total["reader_calls"] == 11 and total["prefixes"] == 4 * 6
  assert total["saved_frac"] == pytest.approx(1 - 11 / 24)


def test_invalid_slots_and_padding_queries():
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader)
  ex = [make_example("a", n=2), None]
  res = step.score(ex, np.array([[0, 1, -1], [-1, -1, -1]]), np.array([[1, -1, -1], [-1, -1, -1]]))
  assert res.stats["queries"] == 1 and res.stats["reader_calls"] == 3
  np.testing.assert_array_equal(res.rewards, np.zeros((2, 3)))
  assert res.answers == [["city1"], []]
  with pytest.raises(ValueError, match="out of range"):
    step.score([make_example("a", n=2)], np.array([[0, 1]]), np.array([[0, 5]]))
  with pytest.raises(ValueError, match="disagree"):
    step.score(ex, np.zeros((2, 3)), np.zeros((2, 2)))


def test_malformed_counts_as_empty_answer_and_is_not_remembered(tmp_path):
  reader = LastTitleReader(malformed_titles={"Paris"})
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  step = scoring.ScoringStep(reader, cache)
  res = step.score([make_example("a")], np.array([[2, 0]]), np.array([[0, 2]]))
  assert res.stats["malformed"] == 2
  np.testing.assert_array_equal(res.values, [[0, 0]])  # the empty answer earns nothing
  assert res.ok.tolist() == [False] and res.stats["failed_queries"] == 1  # ...and carries no signal
  assert len(cache) == 2  # the two good answers only
  res = step.score([make_example("a")], np.array([[2, 0]]), np.array([[0, 2]]))
  assert res.stats["value_memo_hits"] == 0 and res.stats["reader_calls"] == 2  # asked again


def test_failed_query_is_masked_others_keep_their_signal():
  """A failure on one query's prefix marks that query only (ok False); padding queries are False."""
  reader = LastTitleReader(malformed_titles={"city4"})
  step = scoring.ScoringStep(reader)
  ex = [make_example("a"), make_example("b"), None]
  res = step.score(ex, np.array([[2, 0], [2, 0], [-1, -1]]), np.array([[4, 2], [1, 2], [-1, -1]]))
  assert res.ok.tolist() == [False, True, False] and res.stats["failed_queries"] == 1
  np.testing.assert_array_equal(res.rewards[1], [0, 3])  # the healthy query scores as usual


def test_unavailable_reader_propagates_and_caches_nothing(tmp_path):
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  step = scoring.ScoringStep(LastTitleReader(fail_titles={"city4"}), cache)
  with pytest.raises(ReaderUnavailableError):
    step.score([make_example("a")], np.array([[0, 1]]), np.array([[4, 1]]))
  assert len(cache) == 0


def test_evaluation_asks_the_full_top_k_prompt_only():
  """The trainer's evaluation path: evaluation.evaluate answering through ScoringStep.answer."""
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader)
  ex = [make_example("a"), make_example("b")]
  orders = {"policy": [[0, 2, 1, 3], [2, 0, 1, 3]], "reference": [[0, 1, 2, 3], [2, 0, 1, 3]]}
  res = evaluation.evaluate(ex, orders, answer_fn=step.answer, k=2)
  # Only 2-passage prompts are sent, identical ones once; the answer is the last (2nd) title.
  assert [len(r.passages) for r in reader.log] == [2, 2, 2]
  rows = res["per_query"]["policy"]
  assert [r["answer"] for r in rows] == ["Paris", "city0"] and [r["em"] for r in rows] == [1.0, 0.0]
  assert res["systems"]["policy"]["em"] == 50.0 and res["systems"]["reference"]["em"] == 0.0
  assert step.run_stats(evaluation=True)["reader_calls"] == 3 and step.run_stats()["reader_calls"] == 0


def test_answer_arbitrary_requests_deduplicated():
  reader = LastTitleReader()
  step = scoring.ScoringStep(reader)
  ex = make_example("a")
  req = step._request(ex, [0, 2])  # pylint: disable=protected-access
  out = step.answer([req, req, step._request(ex, [1])])  # pylint: disable=protected-access
  assert [r.text for r in out] == ["Paris", "Paris", "city1"] and len(reader.log) == 2
  assert step.run_stats(evaluation=True)["reader_calls"] == 2


class CuttingReader(LastTitleReader):
  """LastTitleReader that reports one passage cut per passage beyond the first (as llama_cpp's fit does)."""

  def _complete(self, requests):
    return [
        dataclasses.replace(r, truncated=len(q.passages) - 1) for r, q in zip(super()._complete(requests), requests)
    ]


def test_truncated_passages_are_counted_in_fresh_calls_only(tmp_path):
  cache = ResponseCache(str(tmp_path / "c.sqlite"))
  step = scoring.ScoringStep(CuttingReader(), cache)
  ex = [make_example("a")]
  ref, act = np.array([[2, 0, 1]]), np.array([[0, 1, 2]])  # prefixes of 1, 2, 3 passages on each side
  res = step.score(ex, ref, act)
  assert res.stats["reader_calls"] == 6 and res.stats["truncated"] == 2 * (0 + 1 + 2)
  assert step.run_stats()["truncated"] == 6
  again = scoring.ScoringStep(CuttingReader(), cache).score(ex, ref, act)
  assert again.stats["reader_calls"] == 0 and again.stats["truncated"] == 0  # cached answers were not cut now
  (r,) = step.answer([scoring.request(ex[0], [0, 1, 3])])
  assert step.run_stats(evaluation=True)["truncated"] == 2 and r.ok
