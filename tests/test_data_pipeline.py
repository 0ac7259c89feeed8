"""Loader: exact coverage over 2 processes x 4 devices, determinism per (seed, epoch), padding and
masks, resume from state(), the encode_fn plumbing, a TFDS array_record source."""

import collections

import numpy as np
import pytest

from rrpo_jax.data import Candidate, Example, Loader, make_encode_fn


def _examples(m, max_cands=5):
  out = []
  for i in range(m):
    cands = [
        Candidate(f"p{i}.{j}", "t", f"text {j}", float(-j), j == 0, (j == 1) if i % 2 else None)
        for j in range(1 + i % max_cands)
    ]
    out.append(Example(f"q{i}", f"question {i}", ["a"], cands))
  return out


def _encode(examples):
  # a stand-in for tokenization.PairEncoder: one token per candidate (its number of characters)
  b = len(examples)
  ids = np.zeros((b, 4, 3), np.int32)
  for r, ex in enumerate(examples):
    for c, cand in enumerate(ex.candidates):
      ids[r, c] = len(cand.text)
  return {"input_ids": ids, "where": ids[..., 0] > 0}


@pytest.mark.parametrize("m", [37, 48])
def test_two_processes_four_devices_cover_every_example_once(m):
  processes, devices, global_batch = 2, 4, 16
  data = _examples(m)
  loaders = [
      Loader(
          data,
          _encode,
          batch_size=global_batch,
          n=4,
          seed=3,
          process_index=p,
          process_count=processes,
          local_device_count=devices,
      )
      for p in range(processes)
  ]
  assert len(loaders[0]) == -(-m // global_batch)
  orders = []
  for epoch in range(2):
    seen = collections.Counter()
    for step in range(len(loaders[0])):
      for loader in loaders:
        batch = loader.batch(epoch, step)
        assert batch["input_ids"].shape == (8, 4, 3) and batch["query_mask"].shape == (8,)
        for shard in np.split(np.arange(8), devices):  # what each device receives
          for r in shard:
            if batch["query_mask"][r]:
              seen[int(batch["index"][r])] += 1
              assert batch["examples"][r].qid == f"q{batch['index'][r]}"
            else:
              assert batch["index"][r] == -1 and not batch["where"][r].any()
    assert seen == collections.Counter(range(m))  # exactly once per epoch
    orders.append(loaders[0].order(epoch))
  assert not np.array_equal(orders[0], orders[1])  # a new order every epoch


def test_deterministic_per_seed_and_epoch():
  data = _examples(20)
  a, b, c = (Loader(data, None, batch_size=4, n=4, seed=s) for s in (0, 0, 1))
  np.testing.assert_array_equal(a.order(2), b.order(2))
  assert not np.array_equal(a.order(2), c.order(2))
  plain = Loader(data, None, batch_size=4, n=4, shuffle=False)
  np.testing.assert_array_equal(plain.indices(0, 1), [4, 5, 6, 7])


def test_masks_and_labels():
  data = _examples(3)
  batch = Loader(data, _encode, batch_size=4, n=4, shuffle=False).batch(0, 0)
  np.testing.assert_array_equal(batch["query_mask"], [True, True, True, False])
  np.testing.assert_array_equal(batch["where"][:3].sum(1), [1, 2, 3])  # fewer than n: masked
  np.testing.assert_array_equal(batch["has_answer"][2], [True, False, False, False])
  np.testing.assert_array_equal(batch["is_supporting"][0], [-1, -1, -1, -1])  # no labels
  np.testing.assert_array_equal(batch["is_supporting"][1], [0, 1, -1, -1])
  assert len(batch["examples"]) == 4  # the padding row repeats a real example, masked


def test_candidates_cut_to_n():
  data = _examples(5, max_cands=5)
  batch = Loader(data, None, batch_size=5, n=2, shuffle=False).batch(0, 0)
  assert max(len(e.candidates) for e in batch["examples"]) == 2 and batch["where"].shape == (5, 2)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_resume_gives_the_same_remaining_sequence(prefetch):
  data = _examples(23)
  make = lambda: Loader(data, _encode, batch_size=4, n=4, seed=7, num_epochs=3, prefetch=prefetch)
  full = [b["index"].tolist() for b in make()]
  assert len(full) == 3 * 6
  loader = make()
  it = iter(loader)
  head = [next(it)["index"].tolist() for _ in range(8)]  # into the second epoch
  state = loader.state()
  assert state == {"seed": 7, "epoch": 1, "step": 2, "size": 23, "batch_size": 4}
  resumed = make()
  resumed.restore({k: np.int64(v) for k, v in state.items()})  # as a checkpoint returns it
  assert head + [b["index"].tolist() for b in resumed] == full


def test_restore_refuses_a_different_order():
  loader = Loader(_examples(10), None, batch_size=2, n=4, seed=1)
  with pytest.raises(ValueError, match="seed"):
    loader.restore({"seed": 2, "epoch": 0, "step": 1, "size": 10, "batch_size": 2})
  with pytest.raises(ValueError, match="size"):
    loader.restore({"seed": 1, "epoch": 0, "step": 1, "size": 11, "batch_size": 2})


def test_bad_sharding_arguments():
  with pytest.raises(ValueError, match="process_count"):
    Loader(_examples(4), None, batch_size=6, n=2, process_count=4)
  with pytest.raises(ValueError, match="local_device_count"):
    Loader(_examples(4), None, batch_size=6, n=2, process_count=2, local_device_count=2)


def test_make_encode_fn_calls_the_pair_encoder():
  calls = []

  class FakeEncoder:

    def encode(self, questions, passages, *, n):
      calls.append((questions, passages, n))
      return {"input_ids": np.zeros((len(questions), n, 2), np.int32)}

  data = _examples(2)
  batch = Loader(data, make_encode_fn(FakeEncoder(), n=3), batch_size=2, n=3, shuffle=False).batch(0, 0)
  questions, passages, n = calls[0]
  assert questions == ["question 0", "question 1"] and n == 3
  assert passages == [[("t", "text 0")], [("t", "text 0"), ("t", "text 1")]]
  assert batch["input_ids"].shape == (2, 3, 2)


def test_tfds_array_record_source(tmp_path, request):
  from rrpo_jax.data import read_examples, write_examples
  from rrpo_jax.data import tfds_builder

  data = _examples(13)
  write_examples(tmp_path / "train.jsonl", data)
  builder = tfds_builder.make_builder(
      "toy", data_dir=str(tmp_path / "tfds"), files={"train": (str(tmp_path / "train.jsonl"), "dpr")}
  )
  builder.download_and_prepare()
  source = builder.as_data_source("train")
  assert len(source) == 13
  ordered = tfds_builder.in_source_order(source)
  assert [tfds_builder.from_record(ordered[i]) for i in range(13)] == read_examples(
      tmp_path / "train.jsonl", format="dpr"
  )[0]
  loader = Loader(source, _encode, batch_size=4, n=4, seed=0, num_epochs=1)
  qids = [e.qid for b in loader for e, ok in zip(b["examples"], b["query_mask"]) if ok]
  assert sorted(qids) == sorted(e.qid for e in data)
