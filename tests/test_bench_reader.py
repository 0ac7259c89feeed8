"""bench/reader.py part 1 on a few queries: the call accounting of ScoringStep + ResponseCache that
its figures rest on (a policy that repeats the reference costs k calls a query over every epoch; a
Plackett-Luce sample costs more, never more than the naive 2 k a query an epoch)."""

import importlib.util
import os

import numpy as np
import pytest

from rrpo_jax.data import load_sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, EPOCHS, BATCH = 3, 3, 8


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location("bench_reader", os.path.join(ROOT, "bench", "reader.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def examples():
  return load_sample("nq", "train", limit=24)


def test_a_policy_that_repeats_the_reference_costs_k_calls_a_query(bench, examples):
  # sigma 0: the policy's greedy top k is the BM25 order, the reference's prefixes every time.
  r = bench.calls_per_query(examples, k=K, epochs=EPOCHS, batch=BATCH, kind="greedy", sigma=0.0)
  assert r["calls_per_query"] == K
  assert r["naive_per_query"] == 2 * K * EPOCHS
  assert r["fewer"] == pytest.approx(1 - K / (2 * K * EPOCHS))


def test_sampled_policies_cost_more_and_never_more_than_naive(bench, examples):
  greedy = bench.calls_per_query(examples, k=K, epochs=EPOCHS, batch=BATCH, kind="greedy", sigma=0.0)
  gumbel = bench.calls_per_query(examples, k=K, epochs=EPOCHS, batch=BATCH, kind="gumbel", sigma=0.0)
  assert greedy["calls_per_query"] < gumbel["calls_per_query"] <= gumbel["naive_per_query"]
  again = bench.calls_per_query(examples, k=K, epochs=EPOCHS, batch=BATCH, kind="gumbel", sigma=0.0)
  assert again == gumbel  # seeded: the figures repeat


def test_fixed_selections_count_like_the_simulated_ones(bench, examples):
  ref = np.tile(np.arange(K, dtype=np.int32), (len(examples), 1))
  assert bench._count(examples, ref, [ref, ref], k=K, batch=BATCH)["calls_per_query"] == K
  # epoch 2 picks the reference's passages in reverse: each of its k prefixes is a new prompt (the
  # reader sees the passages in pick order), so k more calls a query.
  swapped = ref[:, ::-1].copy()
  r = bench._count(examples, ref, [ref, swapped], k=K, batch=BATCH)
  assert r["calls_per_query"] == K + K
