"""Packed ModernBERT batches (rrpo_jax.models.packing, modernbert.packed_scores): the placement
arithmetic, and packed scores and gradients equal to the padded ones on tiny random models, through
the encoder, Reranker.apply and the data-parallel warm-up step."""

import zlib

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from rrpo_jax.models import packing
from rrpo_jax.models.modernbert import init_params, packed_scores, scores
import tiny

VOCAB, PAD = tiny.MODERNBERT["vocab_size"], tiny.MODERNBERT["pad_token_id"]
# tiny.MODERNBERT: 3 layers (full, sliding, sliding), hidden 64, 4 heads, window |i - j| <= 4; weights
# drawn wider than ModernBERT's 0.02, so that scores differ by O(1).
CONFIG = tiny.modernbert_flax_config(initializer_range=0.2)


def random_pairs(b, n, length, *, seed, missing=0.2, short=3):
  """ids[b][j]: random token lists of 3..length tokens, ~`missing` of them absent ([]); pair (0, 0)
  fills a whole row."""
  rng = np.random.default_rng(seed)
  ids = [
      [
          rng.integers(1, VOCAB, rng.integers(short, length + 1)).tolist() if rng.random() >= missing else []
          for _ in range(n)
      ]
      for _ in range(b)
  ]
  ids[0][0] = rng.integers(1, VOCAB, length).tolist()
  return ids


def padded(ids, n, length):
  out = np.full((len(ids), n, length), PAD, np.int32)
  mask = np.zeros((len(ids), n, length), np.int32)
  for b, pairs in enumerate(ids):
    for j, x in enumerate(pairs):
      out[b, j, : len(x)], mask[b, j, : len(x)] = x, 1
  return out, mask


def packed_args(ids, n, length):
  p = packing.pack(ids, n=n, length=length, pad_id=PAD)
  return tuple(p[k] for k in packing.PACKED_KEYS)


# ------------------------------------------------------------------------------ placement arithmetic
def test_first_fit_decreasing_by_hand_and_invariants():
  # capacity 6, lengths 5 4 3 2 1: 5 -> row 0, 4 -> row 1, 3 -> row 2, 2 -> row 1 (4 + 2 = 6), 1 -> row 0.
  row, offset, rows = packing.first_fit_decreasing([5, 4, 3, 2, 1, 0], 6)
  assert rows == 3
  assert row.tolist() == [0, 1, 2, 1, 0, 0] and offset.tolist() == [0, 0, 0, 4, 5, 0]
  rng = np.random.default_rng(0)
  for _ in range(20):
    lengths = rng.integers(0, 33, rng.integers(1, 40))
    row, offset, rows = packing.first_fit_decreasing(lengths, 32)
    used = np.zeros((max(rows, 1), 32), int)
    for r, o, n in zip(row, offset, lengths):
      used[r, o : o + n] += 1
    assert used.max() <= 1 and np.all(offset + lengths <= 32)  # no overlap, no overflow
    assert rows >= -(-lengths.sum() // 32) and rows <= max(1, np.count_nonzero(lengths))
  with pytest.raises(ValueError, match="does not fit"):
    packing.first_fit_decreasing([7], 6)


def test_row_bucket():
  assert [packing.row_bucket(r) for r in (0, 1, 2, 15, 16, 17, 18, 19, 33, 35, 100)] == [
      1,
      1,
      2,
      15,
      16,
      18,
      18,
      20,
      36,
      36,
      104,
  ]  # every count to 16, then steps of 2 to 32, 4 to 64, 8 to 128
  r = np.arange(1, 2000)
  buckets = np.array([packing.row_bucket(x) for x in r])
  assert np.all(buckets >= r) and np.all(buckets <= np.ceil(r * 1.125)) and np.all(np.diff(buckets) >= 0)
  assert len(set(buckets[(r > 64) & (r <= 128)].tolist())) == 8


def test_pack_layout_and_round_trip():
  ids = random_pairs(3, 7, 16, seed=1)
  p = packing.pack(ids, n=7, length=16, pad_id=PAD)
  b, rows, length = p["packed_ids"].shape
  assert (b, length) == (3, 16) and rows == packing.row_bucket(
      max(packing.plan(ids, length=16)[0][q][2] for q in range(3))
  )
  assert packing.unpack(p, n=7) == ids
  for q in range(3):
    flat_ids, flat_seg, flat_pos = (p[k][q].reshape(-1) for k in ("packed_ids", "segment_ids", "positions"))
    assert np.all(flat_ids[flat_seg == 0] == PAD) and np.all(flat_pos[flat_seg == 0] == 0)
    for j, x in enumerate(ids[q]):
      if x:
        s = p["pair_start"][q, j]
        assert flat_seg[s] == j + 1 and flat_ids[s] == x[0]
        assert flat_pos[flat_seg == j + 1].tolist() == list(range(len(x)))  # positions restart per pair
  assert packing.pays(8, 10, ratio=0.8) and not packing.pays(9, 10, ratio=0.8)


# ------------------------------------------------------------------------------ packed == padded
@pytest.fixture(scope="module")
def params():
  return init_params(CONFIG, jax.random.key(0))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packed_scores_equal_padded(params, pooling):
  config = CONFIG.replace(classifier_pooling=pooling)
  padded_fn = jax.jit(lambda i, m: scores(config, params, i, m))
  packed_fn = jax.jit(lambda *a: packed_scores(config, params, *a))
  # (B, N, L, missing share): shorter than the window, longer than it; few and many padded slots
  for b, n, length, missing in ((2, 5, 6, 0.0), (3, 6, 24, 0.2), (2, 9, 40, 0.5)):
    ids = random_pairs(b, n, length, seed=length, missing=missing)
    where = np.array([[len(x) > 0 for x in pairs] for pairs in ids])
    want = np.asarray(padded_fn(*padded(ids, n, length)))
    got = np.asarray(packed_fn(*packed_args(ids, n, length)))
    assert got.shape == (b, n) and np.all(np.isfinite(got)) and np.abs(want[where]).max() > 0.1
    np.testing.assert_allclose(got[where], want[where], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packed_training_mode_and_gradients_equal_padded(params, pooling):
  config = CONFIG.replace(classifier_pooling=pooling)
  b, n, length = 2, 6, 24
  ids = random_pairs(b, n, length, seed=7)
  where = jnp.asarray([[len(x) > 0 for x in pairs] for pairs in ids])
  weights = jnp.asarray(np.random.default_rng(3).standard_normal((b, n)), jnp.float32)

  def loss(s):
    return jnp.sum(jnp.where(where, jnp.tanh(s) * weights, 0.0))

  key = jax.random.key(5)  # training mode (the trainer's path); dropout rates are 0, so no masks differ
  g_pad = jax.jit(jax.grad(lambda p, *a: loss(scores(config, p, *a, key=key))))(params, *padded(ids, n, length))
  g_pack = jax.jit(jax.grad(lambda p, *a: loss(packed_scores(config, p, *a, key=key))))(
      params, *packed_args(ids, n, length)
  )
  scale = max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g_pad))
  assert scale > 1e-3
  for (path, a), c in zip(jax.tree_util.tree_leaves_with_path(g_pad), jax.tree.leaves(g_pack)):
    np.testing.assert_allclose(c, a, atol=1e-5 * max(scale, 1.0), rtol=0, err_msg=jax.tree_util.keystr(path))


def test_packed_dropout_is_keyed_and_finite(params):
  config = CONFIG.replace(hidden_dropout=0.3, attention_dropout=0.3)
  args = packed_args(random_pairs(2, 5, 12, seed=2), 5, 12)
  fn = jax.jit(lambda key: packed_scores(config, params, *args, key=key))
  a, b, c = (fn(jax.random.key(k)) for k in (1, 1, 2))
  np.testing.assert_array_equal(a, b)
  assert np.all(np.isfinite(a)) and not np.allclose(a, c)


# ------------------------------------------------------------------------------ the encoder and the trainer's path
class WordTokenizer:
  """Tokenizer stand-in with the call PairEncoder makes: [CLS]=1 q [SEP]=2 p [SEP], words hashed into the vocab."""

  pad_token_id = PAD

  def __call__(self, queries, texts, *, truncation, max_length, **_):
    ids, types = [], []
    for q, t in zip(queries, texts):
      qw = [3 + zlib.crc32(w.encode()) % (VOCAB - 3) for w in q.split()]
      tw = [3 + zlib.crc32(w.encode()) % (VOCAB - 3) for w in t.split()][: max(max_length - len(qw) - 3, 0)]
      ids.append([1] + qw + [2] + tw + [2])
      types.append([0] * (len(qw) + 2) + [1] * (len(tw) + 1))
    return {"input_ids": ids, "token_type_ids": types}


def queries_and_passages(b, n, seed):
  rng = np.random.default_rng(seed)
  words = lambda k: " ".join(f"w{x}" for x in rng.integers(0, 50, k))
  qs = [words(rng.integers(2, 6)) for _ in range(b)]
  ps = [[("", words(rng.integers(1, 16))) for _ in range(rng.integers(1, n + 1))] for _ in range(b)]
  return qs, ps


def test_encoder_pack_modes_and_reranker_apply(params):
  from rrpo_jax.models.reranker import Reranker, make_encoder
  from rrpo_jax.models.cross_encoder import CrossEncoderConfig

  qs, ps = queries_and_passages(4, 6, seed=0)
  r = {k: Reranker(CONFIG, params, WordTokenizer(), max_length=48, buckets=(16, 32, 48), pack=k) for k in ("off", "on")}
  enc = {k: x.encoder.encode(qs, ps, n=6) for k, x in r.items()}
  assert set(enc["off"]) == {"input_ids", "attention_mask", "token_type_ids", "where"}
  assert set(enc["on"]) == set(packing.PACKED_KEYS) | {"where"}
  np.testing.assert_array_equal(enc["on"]["where"], enc["off"]["where"])
  length = enc["off"]["input_ids"].shape[-1]
  assert enc["on"]["packed_ids"].shape[-1] == length  # rows as long as the padded batch's bucket
  where = enc["off"].pop("where")
  enc["on"].pop("where")
  want, got = (np.asarray(r[k].apply(params, enc[k])) for k in ("off", "on"))
  np.testing.assert_allclose(got[where], want[where], atol=1e-5, rtol=0)
  # auto: packed where R <= AUTO_RATIO * N; short pairs in long buckets pack, one pair per row does not
  auto = Reranker(CONFIG, params, WordTokenizer(), max_length=48, buckets=(16, 32, 48), pack="auto").encoder
  full = [[("", " ".join(["w1"] * 60))] * 6] * 2  # every pair truncated to 48 tokens: R = N
  for q, p, packs in ((qs, ps, True), (qs[:2], full, False)):
    ids = [auto.tokenize([q[b]] * len(p[b]), p[b])[0] for b in range(len(q))]
    rows = packing.plan(ids, length=auto.bucket(max(len(x) for pairs in ids for x in pairs)))[1]
    assert packing.pays(rows, 6, ratio=packing.AUTO_RATIO) == packs
    assert ("pair_start" in auto.encode(q, p, n=6)) == packs
  bert = CrossEncoderConfig(vocab_size=VOCAB, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16)
  assert make_encoder(WordTokenizer(), bert, max_length=48, buckets=(48,), pack="auto").pack == "off"
  with pytest.raises(ValueError, match="no packed layout"):
    make_encoder(WordTokenizer(), bert, max_length=48, buckets=(48,), pack="on")


def test_sft_step_and_scorer_on_8_devices_packed_equal_padded(params):
  import optax

  from rrpo_jax.core import update as update_lib
  from rrpo_jax.train.batches import model_inputs
  from rrpo_jax.models.reranker import Reranker
  from rrpo_jax.train.rollout import make_scorer
  from rrpo_jax.core.sharding import DataParallel, host_copy

  dp = DataParallel("shard_map")
  assert dp.size == 8
  qs, ps = queries_and_passages(8, 5, seed=3)
  tx = update_lib.make_optimizer(learning_rate=1e-3, total_steps=2)
  results = {}
  for k in ("off", "on"):
    r = Reranker(CONFIG, params, WordTokenizer(), max_length=32, buckets=(16, 32), pack=k)
    batch = r.encoder.encode(qs, ps, n=5)
    inputs, where = model_inputs(batch), batch["where"]
    labels = np.zeros(where.shape, np.float32)
    labels[:, 0] = 1.0
    s = make_scorer(dp, r.apply, train_mode=False)(dp.replicate(params), inputs, np.zeros((2,), np.uint32), 0)
    state = dp.replicate(update_lib.TrainState.create(jax.tree.map(np.asarray, params), tx, window_capacity=1))
    step = update_lib.make_sft_step(r.apply, tx, dp)
    state, metrics = step(state, *dp.shard((inputs, where, labels, np.ones(8, bool))), jax.random.key(0))
    results[k] = (s, jax.device_get(metrics), host_copy(dp, state).params)
  (s0, m0, p0), (s1, m1, p1) = results["off"], results["on"]
  np.testing.assert_allclose(s1[where], s0[where], atol=1e-5, rtol=0)
  for name in ("loss", "grad_norm", "param_norm"):
    np.testing.assert_allclose(m1[name], m0[name], rtol=1e-5, err_msg=name)
  assert float(m0["grad_norm"]) > 1e-3
  diff = optax.tree.norm(jax.tree.map(lambda a, b: a - b, p0, p1))
  assert float(diff) < 1e-5 * float(optax.tree.norm(p0))


@pytest.mark.slow
@pytest.mark.timeout(2000)
def test_trainer_end_to_end_with_packed_modernbert(tmp_path):
  """sft -> rrpo -> eval -> export through `python -m rrpo_jax.main` (2 devices, fake reader) with a tiny
  random ModernBERT directory and data.pack=on: rows of 384 tokens hold two or three NQ pairs."""
  import json

  transformers = pytest.importorskip("transformers")
  pytest.importorskip("torch")
  from test_train_smoke import run_main

  from rrpo_jax.models.reranker import Reranker

  tok = tiny.minilm_tokenizer()
  # tiny.MODERNBERT's 3 layers over MiniLM's vocabulary (real NQ text), hidden 32, 2 heads, 512 positions,
  # window |i - j| <= 32; HF's own init.
  cfg = tiny.modernbert_config(
      vocab_size=len(tok),
      hidden_size=32,
      intermediate_size=48,
      num_attention_heads=2,
      max_position_embeddings=512,
      local_attention=64,
      pad_token_id=tok.pad_token_id,
  )
  init = tmp_path / "modernbert_init"
  tiny.random_model(transformers.ModernBertForSequenceClassification, cfg).save_pretrained(str(init))
  tok.save_pretrained(str(init))
  r = Reranker.from_pretrained(str(init), max_length=384, buckets=(384,), pack="on")
  from rrpo_jax.data.sample import load_sample

  exs = load_sample("nq", "train", n=4)[:2]
  batch = r.encoder.encode([e.question for e in exs], [[(c.title, c.text) for c in e.candidates] for e in exs], n=4)
  assert batch["packed_ids"].shape[1] < 4  # the run's batches really are packed
  workdir = tmp_path / "run"
  proc, seconds = run_main(
      workdir,
      "mode=sft,rrpo,eval,export",
      f"model.init={init}",
      "data.max_length=384",
      "data.buckets=(384,)",
      "data.pack=on",
      "sft.steps=2",
      "reader.backend=fake",
      f"reader.cache_path={tmp_path / 'cache.sqlite'}",
      timeout=1800,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  print(f"packed ModernBERT sft -> rrpo -> eval -> export: {seconds:.1f} s")
  assert "evaluation (step 2)" in proc.stdout and "exported rrpo step 2" in proc.stdout
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["phase"] == "rrpo"] == [1, 2]
  assert all(np.isfinite(r["loss"]) for r in rows if r["phase"] in ("sft", "rrpo"))
  assert Reranker.from_pretrained(str(workdir / "export")).config.family == "modernbert"
