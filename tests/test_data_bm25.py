"""BM25: a hand-checked ranking, agreement with bm25s' own in-memory index, chunking invariance, the CLI."""

import json
import math
import subprocess
import sys

import bm25s
import numpy as np
import pytest

from rrpo_jax.data.bm25 import BM25Index

CORPUS = ["apple banana", "apple apple cherry", "banana cherry date", "elderberry fig"]


def test_hand_checked_ranking():
  # Lucene BM25, k1 = 0.9, b = 0.4. Document lengths 2, 3, 3, 2 (avg 2.5); N = 4.
  # "apple": df = 2, idf = ln(1 + (4 - 2 + 0.5) / (2 + 0.5)) = ln 2.
  #   d0: tf 1, K = 0.9 * (0.6 + 0.4 * 2 / 2.5) = 0.828 -> ln2 * 1 / 1.828 = 0.37918
  #   d1: tf 2, K = 0.9 * (0.6 + 0.4 * 3 / 2.5) = 0.972 -> ln2 * 2 / 2.972 = 0.46646
  # "cherry date": cherry df 2 (idf ln 2), date df 1 (idf ln(1 + 3.5 / 1.5) = ln(10/3)).
  #   d2: ln2 / 1.972 + ln(10/3) / 1.972 = 0.96201;  d1: ln2 / 1.972 = 0.35150
  index = BM25Index.build(CORPUS, k1=0.9, b=0.4, show_progress=False)
  idx, scores = index.search(["apple", "cherry date", "fig elderberry elderberry"], k=3)
  np.testing.assert_array_equal(idx[0], [1, 0, 2])  # d2 and d3 tie at 0: lower index first
  np.testing.assert_allclose(scores[0], [2 * math.log(2) / 2.972, math.log(2) / 1.828, 0.0], rtol=1e-6)
  np.testing.assert_array_equal(idx[1][:2], [2, 1])
  np.testing.assert_allclose(scores[1][:2], [(math.log(2) + math.log(10 / 3)) / 1.972, math.log(2) / 1.972], rtol=1e-6)
  assert idx[2][0] == 3


def test_more_slots_than_passages_are_minus_one():
  index = BM25Index.build(CORPUS[:2], show_progress=False)
  idx, scores = index.search(["apple"], k=4)
  np.testing.assert_array_equal(idx[0], [1, 0, -1, -1])
  assert np.isneginf(scores[0, 2:]).all()


@pytest.fixture(scope="module")
def paragraphs(request):
  from rrpo_jax.data import load_sample

  examples = load_sample("hotpotqa", "dev", cache_dir=request.config.cache.mkdir("rrpo_jax_data"))
  texts = list(dict.fromkeys(f"{c.title} {c.text}" for e in examples for c in e.candidates))
  return texts, [e.question for e in examples[:40]]


@pytest.mark.parametrize("chunk_size, spill", [(10_000, False), (97, True)])
def test_matches_bm25s_in_memory_index(paragraphs, tmp_path, chunk_size, spill):
  texts, questions = paragraphs
  index = BM25Index.build(texts, chunk_size=chunk_size, spill_dir=str(tmp_path) if spill else None, show_progress=False)
  idx, scores = index.search(questions, k=10)
  tokenizer = bm25s.tokenization.Tokenizer(stopwords="en")
  ref = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
  ref.index(tokenizer.tokenize(texts, show_progress=False, return_as="tuple"), show_progress=False)
  q = tokenizer.tokenize(questions, update_vocab=False, show_progress=False, return_as="ids")
  ref_idx, ref_scores = ref.retrieve(q, k=10, show_progress=False)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
  assert (idx == ref_idx).mean() > 0.99  # equal up to the order of exact ties
  assert list(tmp_path.iterdir()) == []  # spilled chunks are removed


def test_cli_end_to_end(tmp_path):
  corpus, questions, out = tmp_path / "psgs.tsv", tmp_path / "q.jsonl", tmp_path / "out.jsonl"
  corpus.write_text(
      "id\ttext\ttitle\n"
      'w1\t"Paris is the capital of France."\tParis\n'
      "w2\tBerlin is the capital of Germany.\tBerlin\n"
      "w3\tThe Seine flows through the city.\tSeine\n"
  )
  questions.write_text(json.dumps({"question": "capital of France", "answer": ["Paris"]}) + "\n")
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "rrpo_jax.data.bm25",
          f"--corpus={corpus}",
          f"--questions={questions}",
          "--questions_format=nq_open",
          "--top_n=2",
          f"--out={out}",
          "--chunk_size=2",
      ],
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0, proc.stderr
  assert "indexed 3 passages" in proc.stderr and "peak memory" in proc.stderr
  row = json.loads(out.read_text())
  assert [c["id"] for c in row["ctxs"]] == ["w1", "w2"]
  assert [c["has_answer"] for c in row["ctxs"]] == [True, False]
  assert row["ctxs"][0]["title"] == "Paris" and row["ctxs"][0]["text"] == "Paris is the capital of France."
