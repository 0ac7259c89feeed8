"""Writes a synthetic passage collection in the psgs_w100.tsv layout, for measuring the BM25 CLI.

  python tools/bm25_collection.py --passages=1000000 --out=/tmp/psgs.tsv --questions=/tmp/q.jsonl

Each passage has 100 words: about 40% English stop words, the rest drawn from a Zipf law
(exponent 1.2) over a 5M-word vocabulary. On 6,084 passages this gives 51 distinct indexed terms
per passage and 57k terms in all, against 48 and 39k for the real Wikipedia paragraphs of the NQ
sample; its vocabulary grows faster than real text's, so memory figures err on the high side.
Questions are 8 consecutive words of a passage.
"""

import argparse
import json

import numpy as np
import tqdm

STOP = (
    "the of and in to a was is for as on by with he that at from his it an were are which this "
    "be also or had first one their its new after but who not they have her she two been"
).split()


def word(i: int) -> str:
  digits = "abcdefghijklmnopqrstuvwxyz"
  out = ""
  i += 26 * 27  # at least three letters
  while i:
    i, r = divmod(i, 26)
    out += digits[r]
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--passages", type=int, default=1_000_000)
  p.add_argument("--out", required=True)
  p.add_argument("--questions", required=True)
  p.add_argument("--n_questions", type=int, default=1000)
  args = p.parse_args()
  rng = np.random.default_rng(0)
  vocab = 5_000_000
  cache = {}
  questions = []
  with open(args.out, "w", encoding="utf-8") as f:
    f.write("id\ttext\ttitle\n")
    for start in tqdm.trange(0, args.passages, 10_000, desc="passages"):
      m = min(10_000, args.passages - start)
      ids = (rng.zipf(1.2, size=(m, 100)) - 1) % vocab
      stop = rng.random((m, 100)) < 0.4
      stops = rng.integers(0, len(STOP), size=(m, 100))
      for r in range(m):
        words = [
            STOP[s] if st else (cache.get(w) or cache.setdefault(w, word(w)))
            for w, st, s in zip(ids[r].tolist(), stop[r].tolist(), stops[r].tolist())
        ]
        f.write(f"{start + r}\t{' '.join(words[1:])}\t{words[0]}\n")
        if len(questions) < args.n_questions and rng.random() < 0.01:
          questions.append({"question": " ".join(words[10:18]), "answer": [words[12]]})
  with open(args.questions, "w", encoding="utf-8") as f:
    for q in questions:
      f.write(json.dumps(q) + "\n")


if __name__ == "__main__":
  main()
