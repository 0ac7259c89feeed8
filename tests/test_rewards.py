"""SQuAD-style reward cases: articles, punctuation, case, unicode, several gold answers."""

import pytest

from rrpo_jax.core import rewards


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  a  B,  an   c. ", "b c"),
        ("Théâtre « du » Soleil", "théâtre du soleil"),
        ("ＡＢＣ", "abc"),  # full-width folds under NFKC
        ("theory", "theory"),  # an article only as a whole word
    ],
)
def test_normalize_answer(text, expected):
  assert rewards.normalize_answer(text) == expected


def test_exact_match_max_over_answers():
  assert rewards.exact_match("the Beatles.", ["Rolling Stones", "Beatles"]) == 1.0
  assert rewards.exact_match("Beatles band", ["Beatles"]) == 0.0
  assert rewards.exact_match("Paris", "paris") == 1.0


def test_f1_hand_computed():
  # pred tokens {barack, obama}, gold {obama}: P = 1/2, R = 1, F1 = 2/3.
  assert rewards.f1("Barack Obama", ["Obama"]) == pytest.approx(2 / 3)
  # max over answers: second answer matches exactly.
  assert rewards.f1("Barack Obama", ["Obama", "barack obama"]) == 1.0
  assert rewards.f1("", ["x"]) == 0.0
  assert rewards.f1("the", ["a"]) == 1.0  # both normalise to empty: SQuAD counts equal


def test_hit_token_boundaries():
  assert rewards.hit("It was built in 1889 in Paris.", ["1889"]) == 1.0
  assert rewards.hit("It was built in 18890.", ["1889"]) == 0.0
  assert rewards.hit("anything", ["the"]) == 0.0  # empty normalised answer never hits
  assert rewards.hit("Café de Flore", ["cafe de flore", "Café de Flore"]) == 1.0


def test_reward_mix():
  r = rewards.reward("Obama", ["Barack Obama"], lambda_f=0.5, lambda_h=2.0)
  # EM 0, F1: P = 1, R = 1/2 -> 2/3, hit 0 (gold not inside prediction).
  assert r.em == 0.0 and r.hit == 0.0
  assert r.f1 == pytest.approx(2 / 3)
  assert r.total == pytest.approx(0.5 * 2 / 3)
  r = rewards.reward("He is Barack Obama.", ["Barack Obama"])
  assert r.hit == 1.0 and r.em == 0.0
  # F1: 4 prediction tokens, 2 gold, 2 shared: P = 1/2, R = 1 -> 2/3; total = 0 + 2/3 + 1.
  assert r.total == pytest.approx(5 / 3)


def test_unicode_punctuation_and_numbers():
  # Curly quotes, em dash and the right single quote are Unicode punctuation (category P*).
  assert rewards.normalize_answer("“Paris” — France’s capital") == "paris frances capital"
  assert rewards.exact_match("“Paris”", ("paris",)) == 1.0  # any iterable of answers
  assert rewards.exact_match("1,000", ["1000"]) == 1.0  # SQuAD drops the comma
  assert rewards.exact_match("San José", ["San Jose"]) == 0.0  # accents are kept, as in SQuAD


def test_f1_counts_repeated_tokens_once_per_occurrence():
  # pred [cat] vs gold [cat, cat]: 1 shared, P = 1, R = 1/2 -> 2/3 (and symmetric).
  assert rewards.f1("the the cat", ["cat cat"]) == pytest.approx(2 / 3)
  assert rewards.f1("cat cat", ["cat"]) == pytest.approx(2 / 3)


def test_no_gold_answers_scores_zero():
  assert rewards.reward("anything", []) == rewards.Reward(0.0, 0.0, 0.0, 0.0)
