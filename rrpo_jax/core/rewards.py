"""Rewards: SQuAD exact match, token F1 and hit of the reader's answer, and the reader's likelihood
of the gold answer; each the max over gold answers.

R = EM + lambda_f * F1 + lambda_h * hit + lambda_ll * q   (rrpo-method.md, "Reward per step"; q:
REPLUG / Atlas / RLPR's reader likelihood, below).
The terms are registered by name in TERMS with the config.reward field that holds their weight
(EM's is fixed at 1): a new term is one `@register_term(name, weight="lambda_x")` function here,
its weight `c.reward.lambda_x` in rrpo_jax/config.py, and a test. Two kinds:
  answer terms   fn(prediction, answers) -> float: a function of the generated answer;
  reader terms   registered with asks=: asks(answers) -> the continuations the reader scores
                 teacher-forced after the prefix's prompt, and fn(mean_logprobs, answers) -> float
                 of their mean token log-probabilities. The scoring step asks the reader only for
                 reader terms whose weight is not 0: at weight 0 the reward is the paper's, exactly.
Answers are compared after rrpo_jax.core.text.normalize_answer (SQuAD's normalisation, NFKC-folded).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from rrpo_jax.registry import Registry
from rrpo_jax.core.text import as_list as _as_list
from rrpo_jax.core.text import contains_answer, normalize_answer  # noqa: F401  (re-exported: rewards.normalize_answer)


def exact_match(prediction: str, answers: str | Iterable[str]) -> float:
  """1.0 if the normalised prediction equals a normalised gold answer, else 0.0."""
  pred = normalize_answer(prediction)
  return float(any(pred == normalize_answer(a) for a in _as_list(answers)))


def _f1_single(pred_tokens: list[str], gold_tokens: list[str]) -> float:
  if not pred_tokens or not gold_tokens:
    return float(pred_tokens == gold_tokens)
  common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
  same = sum(common.values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred_tokens), same / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: str | Iterable[str]) -> float:
  """Token-level F1 between normalised prediction and gold answer, max over answers."""
  pred = normalize_answer(prediction).split()
  return max((_f1_single(pred, normalize_answer(a).split()) for a in _as_list(answers)), default=0.0)


def hit(prediction: str, answers: str | Iterable[str]) -> float:
  """1.0 if a normalised gold answer occurs inside the normalised prediction, else 0.0."""
  return float(contains_answer(prediction, answers))


@dataclasses.dataclass(frozen=True)
class Term:
  """A reward term with a value in [0, 1]; weight: the config.reward field holding its weight (None:
  fixed weight 1).

  Answer term (asks=None): fn(prediction, answers: list[str]) -> float.
  Reader term: asks(answers) -> continuations to score; fn(mean_logprobs: list[float], answers) ->
  float, mean_logprobs[i] the mean token log-probability of continuation i after the prompt.
  """

  fn: Callable[..., float]
  weight: str | None
  asks: Callable[[list[str]], list[str]] | None = None

  @property
  def needs_reader(self) -> bool:
    return self.asks is not None


TERMS: Registry[Term] = Registry("reward term")


def register_term(name: str, *, weight: str | None, asks: Callable[[list[str]], list[str]] | None = None):
  """Decorator: registers the reward term `name` (an answer term, or with asks= a reader term)."""

  def add(fn):
    TERMS.register(name, Term(fn, weight, asks))
    return fn

  return add


register_term("em", weight=None)(exact_match)
register_term("f1", weight="lambda_f")(f1)
register_term("hit", weight="lambda_h")(hit)

MAX_ALIASES = 3  # gold aliases the likelihood term scores per prefix
MAX_ALIAS_CHARS = 100  # longer gold answers are cut (a 100-character answer is a sentence)


def gold_aliases(answers: str | Iterable[str]) -> list[str]:
  """The continuations the likelihood term scores: the first MAX_ALIASES gold answers in the
  dataset's order, stripped, cut to MAX_ALIAS_CHARS, skipping empty ones and those equal to an
  earlier one after normalize_answer (so "The Beatles" and "Beatles" count once)."""
  out, seen = [], set()
  for a in _as_list(answers):
    a = str(a).strip()[:MAX_ALIAS_CHARS].strip()
    norm = normalize_answer(a)
    if a and norm not in seen:
      seen.add(norm)
      out.append(a)
    if len(out) == MAX_ALIASES:
      break
  return out


def likelihood(mean_logprobs: Sequence[float], answers: Any = None) -> float:
  """q = max over the gold aliases of exp(mean token log p(alias | prompt)), in (0, 1]: the reader's
  per-token probability of the likeliest gold answer (RLPR: the mean of token probabilities is a
  better reward than the sequence likelihood; the mean of log-probabilities is its geometric form,
  length-fair across aliases). 0.0 when there is no score."""
  del answers
  return max((math.exp(m) for m in mean_logprobs if m > -math.inf), default=0.0)


register_term("likelihood", weight="lambda_ll", asks=gold_aliases)(likelihood)


def answer_terms() -> list[str]:
  """The registered terms that are functions of the generated answer, in registration order."""
  return [name for name, term in TERMS.items() if not term.needs_reader]


def reader_terms(term_weights: Mapping[str, float] | None = None) -> list[str]:
  """The registered reader terms (those that ask the reader to score), in registration order; with
  term_weights, only those whose weight is not 0 (the ones a scoring step computes)."""
  return [
      name
      for name, term in TERMS.items()
      if term.needs_reader and (term_weights is None or term_weights.get(name, 0.0) != 0.0)
  ]


def weights(reward_config: Any = None) -> dict[str, float]:
  """{term: weight} from a config.reward-like mapping (ConfigDict or dict); a missing field is 1.0
  for an answer term and 0.0 for a reader term (asking the reader is opt-in)."""
  out = {}
  for name, term in TERMS.items():
    value = 0.0 if term.needs_reader else 1.0
    if term.weight is not None and reward_config is not None and term.weight in reward_config:
      value = float(reward_config[term.weight])
    out[name] = value
  return out


def terms(prediction: str, answers: str | Iterable[str]) -> dict[str, float]:
  """Every registered answer term of `prediction`, in registration order (reader terms: reader_term)."""
  answers = _as_list(answers)
  return {name: term.fn(prediction, answers) for name, term in TERMS.items() if not term.needs_reader}


def reader_term(name: str, mean_logprobs: Sequence[float], answers: str | Iterable[str]) -> float:
  """The reader term `name` from the mean log-probabilities of its asks(answers) continuations."""
  return TERMS.get(name).fn(list(mean_logprobs), _as_list(answers))


def total(values: Mapping[str, float], term_weights: Mapping[str, float]) -> float:
  """R = sum_term weight * value over the terms in `values`, summed in registration order."""
  out = 0.0
  for name in TERMS:
    if name in values:
      out = out + term_weights[name] * values[name]
  return out


class Reward(NamedTuple):
  """The mixed reward and its terms (all floats)."""

  total: float
  em: float
  f1: float
  hit: float


def reward(prediction: str, answers: str | Iterable[str], *, lambda_f: float = 1.0, lambda_h: float = 1.0) -> Reward:
  """R = EM + lambda_f * F1 + lambda_h * hit, with the terms kept for logging."""
  values = terms(prediction, answers)
  r = total(values, weights({"lambda_f": lambda_f, "lambda_h": lambda_h}))
  return Reward(r, values["em"], values["f1"], values["hit"])
