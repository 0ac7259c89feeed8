"""Answer-quality rewards: SQuAD exact match, token F1 and hit, each the max over gold answers.

R = EM + lambda_f * F1 + lambda_h * hit   (rrpo-method.md, "Reward per step").
The terms are registered by name in TERMS with the config.reward field that holds their weight
(EM's is fixed at 1): a new term is one `@register_term(name, weight="lambda_x")` function here,
its weight `c.reward.lambda_x` in configs/default.py, and a test.
Answers are compared after rrpo_jax.text.normalize_answer (SQuAD's normalisation, NFKC-folded).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from rrpo_jax.registry import Registry
from rrpo_jax.text import as_list as _as_list
from rrpo_jax.text import contains_answer, normalize_answer  # noqa: F401  (re-exported: rewards.normalize_answer)


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
  """A reward term: fn(prediction, answers: list[str]) -> float in [0, 1]; weight: the config.reward
  field holding its weight (None: fixed weight 1)."""

  fn: Callable[[str, list[str]], float]
  weight: str | None


TERMS: Registry[Term] = Registry("reward term")


def register_term(name: str, *, weight: str | None):
  """Decorator: registers fn(prediction, answers) -> float as the reward term `name`."""

  def add(fn):
    TERMS.register(name, Term(fn, weight))
    return fn

  return add


register_term("em", weight=None)(exact_match)
register_term("f1", weight="lambda_f")(f1)
register_term("hit", weight="lambda_h")(hit)


def weights(reward_config: Any = None) -> dict[str, float]:
  """{term: weight} from a config.reward-like mapping (ConfigDict or dict); a missing field is 1.0."""
  out = {}
  for name, term in TERMS.items():
    value = 1.0
    if term.weight is not None and reward_config is not None and term.weight in reward_config:
      value = float(reward_config[term.weight])
    out[name] = value
  return out


def terms(prediction: str, answers: str | Iterable[str]) -> dict[str, float]:
  """Every registered term of `prediction`, in registration order."""
  answers = _as_list(answers)
  return {name: term.fn(prediction, answers) for name, term in TERMS.items()}


def total(values: Mapping[str, float], term_weights: Mapping[str, float]) -> float:
  """R = sum_term weight * value, summed in registration order."""
  out = 0.0
  for name in TERMS:
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
