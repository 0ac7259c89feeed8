"""BM25 candidates over a passage collection (bm25s), streaming the corpus so 21M passages fit.

  python -m rrpo_jax.data.bm25 --corpus=psgs_w100.tsv --questions=Q.jsonl --top_n=100 --out=OUT.jsonl

The corpus is DPR's psgs_w100.tsv layout: `id <TAB> text <TAB> title`, an optional header row,
csv quoting. Each passage is indexed as "title text" with bm25s' tokenizer (lower case, words of 2+
characters, English stop words removed) and Lucene BM25 (k1, b; defaults 0.9 / 0.4 as in Anserini's
Wikipedia runs). Instead of bm25s' in-memory `index` (Python lists of token ids: tens of bytes
per token), the corpus is tokenised in chunks into (term, tf) arrays spilled to disk, then
assembled into bm25s' own CSC score matrix (8 bytes per distinct term of a passage); bm25s
retrieves from it. A second streaming pass fetches only the retrieved passages' text.
has_answer uses rrpo_jax.core.text.contains_answer. order_candidates puts candidate sets that a dataset
fixes (HotpotQA's 10 distractor-setting paragraphs) in BM25 order.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import os
import resource
import sys
import tempfile
import time
from typing import Iterable, Iterator, Sequence

import bm25s
import numpy as np
import tqdm

from rrpo_jax.data.errors import DataError, ReadReport, cli_error, report_skipped
from rrpo_jax.data.example import Example, candidate

DEFAULT_K1, DEFAULT_B = 0.9, 0.4
csv.field_size_limit(1 << 24)


def read_corpus(
    path: str, *, skip_invalid: bool = False, report: ReadReport | None = None
) -> Iterator[tuple[str, str, str]]:
  """Streams (pid, text, title) from a psgs_w100-style TSV (gzip accepted); bad rows raise DataError
  naming file, line and field, or are counted in `report` with `skip_invalid`."""
  from rrpo_jax.data.records import open_lines  # pylint: disable=import-outside-toplevel

  with open_lines(path) as f:
    for n, raw in f:
      try:
        try:
          line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
          raise DataError(path, n, None, f"invalid UTF-8 at byte {e.start}") from None
        if not line.strip():
          continue
        try:
          row = next(csv.reader([line], delimiter="\t"))
        except csv.Error as e:
          raise DataError(path, n, None, f"unreadable TSV row: {e}") from None
        if n == 1 and [c.strip().lower() for c in row] == ["id", "text", "title"]:
          continue
        if len(row) != 3:
          raise DataError(path, n, "columns", f"expected 3 tab-separated columns (id, text, title), got {len(row)}")
        if not row[0].strip():
          raise DataError(path, n, "id", "empty passage id")
        yield row[0], row[1], row[2]
      except DataError as e:
        if not skip_invalid:
          raise
        if report is not None:
          report.skip(e)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
  it = iter(items)
  while chunk := list(itertools.islice(it, size)):
    yield chunk


class BM25Index:
  """A Lucene-BM25 index over a stream of texts, built chunk by chunk; `search` returns top-k."""

  def __init__(self, *, k1: float = DEFAULT_K1, b: float = DEFAULT_B, stopwords: str | None = "en"):
    self.k1, self.b = k1, b
    self.tokenizer = bm25s.tokenization.Tokenizer(stopwords=stopwords)
    self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    self.num_docs = 0
    self.stats: dict[str, float] = {}

  @classmethod
  def build(
      cls,
      texts: Iterable[str],
      *,
      k1: float = DEFAULT_K1,
      b: float = DEFAULT_B,
      chunk_size: int = 100_000,
      spill_dir: str | None = None,
      show_progress: bool = True,
      total: int | None = None,
  ) -> "BM25Index":
    """Indexes `texts` in chunks of `chunk_size`; per-chunk arrays go to `spill_dir` if given."""
    self = cls(k1=k1, b=b)
    t0 = time.perf_counter()
    # A chunk's (term, tf, nnz per passage) arrays, or the .npz file they were spilled to.
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray] | str] = []
    doc_lens: list[np.ndarray] = []
    df = np.zeros(0, np.int64)
    with tempfile.TemporaryDirectory(dir=spill_dir) if spill_dir else _nullcontext() as tmp:
      with tqdm.tqdm(total=total, unit="psg", desc="BM25 tokenise", disable=not show_progress) as bar:
        for ci, chunk in enumerate(_chunks(texts, chunk_size)):
          ids = self.tokenizer.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False)
          lens = np.fromiter(map(len, ids), np.int64, len(ids))
          flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(lens.sum()))
          del ids
          doc = np.repeat(np.arange(len(chunk), dtype=np.int64), lens)
          keys, tf = np.unique((doc << 32) | flat, return_counts=True)  # sorted by (doc, term)
          term = (keys & 0xFFFFFFFF).astype(np.int32)
          nnz_per_doc = np.bincount((keys >> 32).astype(np.int64), minlength=len(chunk)).astype(np.int32)
          tf = np.minimum(tf, 65535).astype(np.uint16)
          vocab = len(self.tokenizer.word_to_id)
          df = np.pad(df, (0, vocab - len(df))) + np.bincount(term, minlength=vocab)
          part: tuple[np.ndarray, np.ndarray, np.ndarray] | str = (term, tf, nnz_per_doc)
          if tmp is not None:
            name = os.path.join(tmp, f"chunk{ci:06d}.npz")
            np.savez(name, term=term, tf=tf, nnz=nnz_per_doc)
            part = name
          parts.append(part)
          doc_lens.append(lens.astype(np.int32))
          self.num_docs += len(chunk)
          bar.update(len(chunk))
      t1 = time.perf_counter()
      self._assemble(
          parts, np.concatenate(doc_lens) if doc_lens else np.zeros(0, np.int32), df, show_progress=show_progress
      )
    self.stats = {
        "passages": self.num_docs,
        "vocab": len(self.tokenizer.word_to_id),
        "nnz": int(df.sum()),
        "tokenise_s": t1 - t0,
        "assemble_s": time.perf_counter() - t1,
        "index_bytes": sum(v.nbytes for v in self.retriever.scores.values() if hasattr(v, "nbytes")),
    }
    return self

  def _assemble(self, parts, doc_len, df, *, show_progress):
    """Lucene BM25 weights into bm25s' CSC layout (column = term, row = passage)."""
    n, k1, b = self.num_docs, self.k1, self.b
    avg_len = float(doc_len.mean()) if n else 1.0
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    norm = k1 * ((1.0 - b) + b * doc_len / avg_len)  # per passage
    indptr = np.zeros(len(df) + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(int(indptr[-1]), np.float32)
    indices = np.empty(int(indptr[-1]), np.int32)
    cursor = indptr[:-1].copy()
    doc0 = 0
    for part in tqdm.tqdm(parts, desc="BM25 assemble", disable=not show_progress):
      if isinstance(part, str):
        with np.load(part) as z:
          part = (z["term"], z["tf"], z["nnz"])
      term, tf, nnz = part
      doc = np.repeat(np.arange(doc0, doc0 + len(nnz), dtype=np.int64), nnz)
      doc0 += len(nnz)
      tf = tf.astype(np.float64)
      weight = (idf[term] * tf / (tf + norm[doc])).astype(np.float32)
      order = np.argsort(term, kind="stable")
      term_s = term[order]
      uniq, first, count = np.unique(term_s, return_index=True, return_counts=True)
      pos = cursor[term_s] + (np.arange(len(term_s)) - np.repeat(first, count))
      data[pos] = weight[order]
      indices[pos] = doc[order]
      cursor[uniq] += count
    self.retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n}
    self.retriever.vocab_dict = self.tokenizer.word_to_id  # shared, not copied: millions of terms
    self.retriever.unique_token_ids_set = range(len(df))  # term ids are 0..V-1: no set needed
    self.retriever.nonoccurrence_array = None

  def search(
      self, queries: Sequence[str], k: int, *, show_progress: bool = False, n_threads: int = 0
  ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k passages per query -> (indices int64[Q, k], scores float32[Q, k]), best first;
    ties broken by lower passage index; slots beyond the collection size are -1 / -inf."""
    q = len(queries)
    kk = min(k, self.num_docs)
    idx = np.full((q, k), -1, np.int64)
    scores = np.full((q, k), -np.inf, np.float32)
    if q == 0 or kk == 0:
      return idx, scores
    ids = self.tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
    docs, sc = self.retriever.retrieve(ids, k=kk, show_progress=show_progress, n_threads=n_threads)
    docs, sc = np.asarray(docs, np.int64), np.asarray(sc, np.float32)
    for i in range(q):
      order = np.lexsort((docs[i], -sc[i]))
      idx[i, :kk], scores[i, :kk] = docs[i][order], sc[i][order]
    return idx, scores


class _nullcontext:

  def __enter__(self):
    return None

  def __exit__(self, *exc):
    return False


def attach_candidates(
    examples: Sequence[Example],
    idx: np.ndarray,
    scores: np.ndarray,
    passages: dict[int, tuple[str, str, str]],
    *,
    show_progress: bool = False,
) -> list[Example]:
  """New examples whose candidates are the retrieved passages (index -> (pid, text, title)),
  labelled with has_answer."""
  out = []
  rows = tqdm.tqdm(zip(examples, idx, scores), total=len(examples), desc="has_answer labels", disable=not show_progress)
  for ex, row, srow in rows:
    cands = [
        candidate(passages[i][0], passages[i][2], passages[i][1], ex.answers, score=float(s))
        for i, s in zip(row.tolist(), srow.tolist())
        if i >= 0
    ]
    out.append(Example(ex.qid, ex.question, list(ex.answers), cands, dict(ex.meta)))
  return out


def order_candidates(
    examples: Sequence[Example], *, k1: float = DEFAULT_K1, b: float = DEFAULT_B, show_progress: bool = False
) -> list[Example]:
  """New examples whose own candidates are in BM25 order, with their BM25 scores: for candidate
  sets fixed by the dataset (HotpotQA's distractor setting). One index over the distinct passages
  ("title text") of all the examples' candidates, as a retriever's index over a corpus would be
  (IDF and average length from that pool, not from one question's 10 paragraphs); each question
  scores every passage and keeps its own, best first, ties in the given order."""
  key_of: dict[tuple[str, str], int] = {}
  for ex in examples:
    for c in ex.candidates:
      key_of.setdefault((c.title, c.text), len(key_of))
  if not key_of:
    return [dataclasses.replace(ex) for ex in examples]
  index = BM25Index.build(
      (f"{title} {text}" for title, text in key_of), k1=k1, b=b, show_progress=show_progress, total=len(key_of)
  )
  idx, scores = index.search([ex.question for ex in examples], len(key_of))
  out = []
  for ex, row, srow in zip(examples, idx, scores):
    by_doc = np.zeros(len(key_of), np.float32)
    by_doc[row[row >= 0]] = srow[row >= 0]
    own = [float(by_doc[key_of[(c.title, c.text)]]) for c in ex.candidates]
    order = sorted(range(len(own)), key=lambda i: (-own[i], i))
    cands = [dataclasses.replace(ex.candidates[i], score=own[i]) for i in order]
    out.append(Example(ex.qid, ex.question, list(ex.answers), cands, dict(ex.meta)))
  return out


def peak_rss_mb() -> float:
  """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
  from rrpo_jax.data.files import read_examples, write_examples  # pylint: disable=import-outside-toplevel
  from rrpo_jax.data.formats import FORMATS  # pylint: disable=import-outside-toplevel

  p = argparse.ArgumentParser(
      prog="python -m rrpo_jax.data.bm25", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--corpus", required=True, help="passages TSV: id, text, title (psgs_w100 layout)")
  p.add_argument("--questions", required=True, help="questions file (any --questions_format)")
  p.add_argument("--questions_format", default="dpr", choices=list(FORMATS))
  p.add_argument("--top_n", type=int, default=100, help="candidates per question")
  p.add_argument("--out", required=True, help="output DPR-style JSONL")
  p.add_argument("--k1", type=float, default=DEFAULT_K1)
  p.add_argument("--b", type=float, default=DEFAULT_B)
  p.add_argument("--chunk_size", type=int, default=100_000, help="passages tokenised at a time")
  p.add_argument("--tmp_dir", default=None, help="where chunk arrays are spilled (default: system temp)")
  p.add_argument("--threads", type=int, default=0, help="retrieval threads (0 = in this thread)")
  p.add_argument("--skip_invalid", action="store_true", help="skip and count bad records")
  args = p.parse_args(argv)
  if args.top_n < 1:
    p.error("--top_n must be >= 1")
  try:
    questions, qreport = read_examples(
        args.questions, format=args.questions_format, skip_invalid=args.skip_invalid, require_candidates=False
    )
    creport = ReadReport(args.corpus)
    t0 = time.perf_counter()
    texts = (
        f"{title} {text}" for _, text, title in read_corpus(args.corpus, skip_invalid=args.skip_invalid, report=creport)
    )
    index = BM25Index.build(
        texts, k1=args.k1, b=args.b, chunk_size=args.chunk_size, spill_dir=args.tmp_dir or tempfile.gettempdir()
    )
    if index.num_docs == 0:
      raise DataError(args.corpus, None, None, "no passages to retrieve from (an empty corpus, or every row invalid)")
    t1 = time.perf_counter()
    idx, scores = index.search([q.question for q in questions], args.top_n, show_progress=True, n_threads=args.threads)
    t2 = time.perf_counter()
    wanted = set(idx[idx >= 0].tolist())
    passages = {}
    for i, psg in enumerate(read_corpus(args.corpus, skip_invalid=True)):  # bad rows already counted
      if i in wanted:
        passages[i] = psg
    examples = attach_candidates(questions, idx, scores, passages, show_progress=True)
    n = write_examples(args.out, examples, with_candidates=True)
  except (DataError, OSError) as e:
    return cli_error(e)
  creport.n_read = index.num_docs
  report_skipped(qreport)
  report_skipped(creport)
  s = index.stats
  print(
      f"indexed {s['passages']} passages ({s['vocab']} terms, {s['nnz']} postings, index "
      f"{s['index_bytes'] / 2**20:.1f} MiB) in {t1 - t0:.1f} s; searched {len(questions)} questions "
      f"in {t2 - t1:.1f} s; peak memory {peak_rss_mb():.0f} MiB; wrote {n} examples to {args.out}",
      file=sys.stderr,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
