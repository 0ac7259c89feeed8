"""The bundled samples (rrpo_jax/sample_data, see its SOURCE.md) as DPR-style JSONL with candidates.

- "nq": splits train (2,255) / dev (200) / test (200); candidates are the BM25 top-n (default 20)
  over the sample's 6,084-passage pool, built on first use (a few seconds) and cached.
- "hotpotqa": splits train (250) / dev (100); candidates are HotpotQA's 10 distractor-setting
  paragraphs with their is_supporting labels (n does not apply), in BM25 order with their BM25
  scores (bm25.order_candidates: one index over the sample's 3,489 distinct paragraphs, all splits,
  so IDF and lengths come from a corpus as a retriever's would; the source files' order put the
  supporting paragraphs at positions 0-9 about uniformly).
Splits are shuffled once, so the first m examples of a split are a random subset.
The cache lives in `cache_dir`, else $RRPO_JAX_CACHE, else $XDG_CACHE_HOME/rrpo_jax, else
~/.cache/rrpo_jax; its file names carry a fingerprint of the sample files and settings, and files
are written atomically, so concurrent first uses and stale caches are safe.

  python -m rrpo_jax.data.sample [--n=20]   # builds both samples and prints BM25 recall@k
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
from typing import Sequence

from rrpo_jax.data.example import Example
from rrpo_jax.data.files import read_examples, write_examples

SAMPLE_DIR = pathlib.Path(__file__).resolve().parent.parent / "sample_data"
SPLITS = {"nq": ("train", "dev", "test"), "hotpotqa": ("train", "dev")}
_HOTPOT_FILES = {
    "train": (("train.hotpotqa.json.gz", "hotpotqa"), ("train.ircot.jsonl.gz", "hotpotqa_ircot")),
    "dev": (("dev.ircot.jsonl.gz", "hotpotqa_ircot"),),
}
# Bump a sample's version when its cached files' content would change for the same inputs (it is
# part of the cache name, so an old file is never read again). hotpotqa 3: candidates in BM25 order.
_VERSIONS = {"nq": "2", "hotpotqa": "3"}
_K1, _B = 0.9, 0.4  # BM25 parameters of the sample (bm25.DEFAULT_K1 / DEFAULT_B; bm25s loads lazily)


def default_cache_dir() -> pathlib.Path:
  if os.environ.get("RRPO_JAX_CACHE"):
    return pathlib.Path(os.environ["RRPO_JAX_CACHE"])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "rrpo_jax"


def _fingerprint(name: str, n: int, version: str | None = None) -> str:
  h = hashlib.sha256(f"{version or _VERSIONS[name]}|{name}|{n}|{_K1}|{_B}".encode())
  for f in sorted((SAMPLE_DIR / name).iterdir()):
    h.update(f.name.encode())
    h.update(f.read_bytes())
  return h.hexdigest()[:12]


def sample_path(
    name: str, split: str, *, n: int = 20, cache_dir: str | os.PathLike | None = None, show_progress: bool = True
) -> str:
  """Path of the bundled sample `name` / `split` as DPR-style JSONL with candidates (read it with
  read_examples(path, format="dpr")); built on first use and cached."""
  if name not in SPLITS:
    raise ValueError(f"unknown sample {name!r}; expected one of {sorted(SPLITS)}")
  if split not in SPLITS[name]:
    raise ValueError(f"sample {name!r} has splits {SPLITS[name]}, not {split!r}")
  if name == "hotpotqa":
    n = 10
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  out = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
  out = out / "sample" / f"{name}-{_fingerprint(name, n)}"
  path = out / f"{split}.top{n}.jsonl"
  if not path.exists():
    if show_progress:
      print(f"rrpo_jax: building the {name} sample (first use; cached in {out})", file=sys.stderr, flush=True)
    _build(name, n, out, show_progress=show_progress)
  return str(path)


def load_sample(
    name: str, split: str, *, n: int = 20, limit: int | None = None, cache_dir: str | os.PathLike | None = None
) -> list[Example]:
  """The examples of sample_path(name, split, n=n), the first `limit` if given."""
  examples, _ = read_examples(sample_path(name, split, n=n, cache_dir=cache_dir), format="dpr")
  return examples[:limit] if limit else examples


def _build(name: str, n: int, out: pathlib.Path, *, show_progress: bool) -> None:
  from rrpo_jax.data.bm25 import BM25Index, attach_candidates, order_candidates, read_corpus  # slow import

  out.mkdir(parents=True, exist_ok=True)
  d = SAMPLE_DIR / name
  if name == "hotpotqa":
    by_split = {
        split: [ex for f, fmt in files for ex in read_examples(d / f, format=fmt)[0]]
        for split, files in _HOTPOT_FILES.items()
    }
    ordered = iter(order_candidates([ex for exs in by_split.values() for ex in exs], k1=_K1, b=_B))
    for split, examples in by_split.items():
      write_examples(out / f"{split}.top{n}.jsonl", [next(ordered) for _ in examples])
    return
  passages = list(read_corpus(str(d / "passages.tsv.gz")))
  index = BM25Index.build(
      (f"{title} {text}" for _, text, title in passages), k1=_K1, b=_B, show_progress=show_progress, total=len(passages)
  )
  for split in SPLITS[name]:
    questions, _ = read_examples(d / f"questions.{split}.jsonl", format="nq_open")
    idx, scores = index.search([q.question for q in questions], n)
    examples = attach_candidates(questions, idx, scores, dict(enumerate(passages)), show_progress=show_progress)
    write_examples(out / f"{split}.top{n}.jsonl", examples, with_candidates=True)


def recall_at_k(examples: Sequence[Example], ks: Sequence[int]) -> dict[str, float]:
  """Fraction of questions with a has_answer candidate in the top k (and, where meta has a
  gold_pid, with the gold passage in the top k), for each k."""
  out = {}
  for k in ks:
    out[f"has_answer@{k}"] = sum(any(c.has_answer for c in e.candidates[:k]) for e in examples) / len(examples)
  if all("gold_pid" in e.meta for e in examples):
    for k in ks:
      out[f"gold@{k}"] = sum(any(c.pid == e.meta["gold_pid"] for c in e.candidates[:k]) for e in examples) / len(
          examples
      )
  return out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(
      prog="python -m rrpo_jax.data.sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--n", type=int, default=20)
  p.add_argument("--cache_dir", default=None)
  args = p.parse_args(argv)
  for name, splits in SPLITS.items():
    for split in splits:
      path = sample_path(name, split, n=args.n, cache_dir=args.cache_dir, show_progress=True)
      examples, _ = read_examples(path, format="dpr")
      ks = [k for k in (1, 3, 5, 10, 20, 50, 100) if k <= len(examples[0].candidates)]
      r = recall_at_k(examples, ks)
      print(f"{name}/{split}: {len(examples)} questions, {path}")
      print("  " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
  main()
