"""Answer normalisation lives in rrpo_jax.core.text; data labelling and rewards share it."""

from rrpo_jax.core import rewards
from rrpo_jax.core import text
from rrpo_jax.data import example


def test_one_normalisation_for_labels_and_rewards():
  assert rewards.normalize_answer is text.normalize_answer
  assert rewards.contains_answer is text.contains_answer
  assert example.contains_answer is text.contains_answer
  assert text.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"  # punctuation dropped, not spaced
  assert text.contains_answer("built in 1889 in Paris", ["1889"]) and not text.contains_answer("18890", "1889")
  assert example.candidate("1", "t", "It is in Paris.", ["paris"]).has_answer


def test_the_data_layer_does_not_import_rewards():
  src = open(example.__file__, encoding="utf-8").read()
  assert "from rrpo_jax import rewards" not in src and "from rrpo_jax.core.rewards" not in src
