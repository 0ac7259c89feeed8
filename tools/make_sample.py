"""Regenerates rrpo_jax/sample_data/ from the shared public QA files (run from the repo root).

  python tools/make_sample.py [--shared=../shared/data]

NQ: the 2,655 NQ-open dev questions that have an annotated gold paragraph (nq-open-oracle), as
NQ-open rows (question, answer) plus "id" (line in NQ-open.dev.jsonl) and "gold_pid", shuffled with
seed 0 and split dev 200 / test 200 / train 2,255; passages.tsv.gz (id, text, title) holds their
gold paragraphs plus every HotpotQA paragraph of the shared files as distractors.
HotpotQA: the 100 train rows (original JSON) + IRCoT dev lines 101-250 = train; lines 1-100 = dev.
Rows are copied verbatim; gzip files are written with mtime 0 so reruns are byte-identical.
Only this script reads ../shared; the package reads its own copy.
"""

import argparse
import csv
import gzip
import io
import json
import os
import random

OUT = os.path.join(os.path.dirname(__file__), "..", "rrpo_jax", "sample_data")
N_DEV, N_TEST = 200, 200


def write_gz(path, data: bytes):
  with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
    f.write(data)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
  args = p.parse_args()
  nq_dir, hp_dir = os.path.join(OUT, "nq"), os.path.join(OUT, "hotpotqa")
  os.makedirs(nq_dir, exist_ok=True)
  os.makedirs(hp_dir, exist_ok=True)

  # --- HotpotQA -----------------------------------------------------------------------------
  hp = os.path.join(args.shared, "hotpotqa-distractor")
  with open(os.path.join(hp, "hotpotqa_train_hipporag100.json"), "rb") as f:
    train_json = f.read()
  with open(os.path.join(hp, "hotpotqa_dev_ircot_part_a.jsonl"), "rb") as f:
    ircot = f.read().splitlines(keepends=True)
  write_gz(os.path.join(hp_dir, "train.hotpotqa.json.gz"), train_json)
  write_gz(os.path.join(hp_dir, "train.ircot.jsonl.gz"), b"".join(ircot[100:]))
  write_gz(os.path.join(hp_dir, "dev.ircot.jsonl.gz"), b"".join(ircot[:100]))

  # --- NQ -----------------------------------------------------------------------------------
  with open(os.path.join(args.shared, "nq-open", "NQ-open.dev.jsonl"), encoding="utf-8") as f:
    nq_lines = f.read().splitlines()
  line_of = {json.loads(l)["question"]: i for i, l in enumerate(nq_lines, 1)}
  with gzip.open(os.path.join(args.shared, "nq-open-oracle", "nq-open-oracle.jsonl.gz"), "rt", encoding="utf-8") as f:
    oracle = [json.loads(l) for l in f]
  passages, pid_of, counts = [], {}, {"nq": 0, "hp": 0}

  def add(prefix, title, text):
    key = (title, text)
    if key not in pid_of:
      pid_of[key] = f"{prefix}{counts[prefix]}"
      counts[prefix] += 1
      passages.append((pid_of[key], text, title))
    return pid_of[key]

  rows = []
  for o in oracle:
    n = line_of[o["question"]]
    row = json.loads(nq_lines[n - 1])
    ctx = o["ctxs"][0]
    row["id"] = f"nq-dev-{n}"
    row["gold_pid"] = add("nq", ctx["title"], ctx["text"].strip())
    rows.append(row)
  seen_titles = set()
  for r in json.loads(train_json):
    for title, sents in r["context"]:
      if title not in seen_titles:
        seen_titles.add(title)
        add("hp", title, "".join(sents).strip())
  for l in ircot:
    for c in json.loads(l)["contexts"]:
      if c["title"] not in seen_titles:
        seen_titles.add(c["title"])
        add("hp", c["title"], c["paragraph_text"].strip())
  random.Random(0).shuffle(rows)
  splits = {"dev": rows[:N_DEV], "test": rows[N_DEV : N_DEV + N_TEST], "train": rows[N_DEV + N_TEST :]}
  for split, rs in splits.items():
    with open(os.path.join(nq_dir, f"questions.{split}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
      for r in rs:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
  buf = io.StringIO(newline="")
  w = csv.writer(buf, delimiter="\t", lineterminator="\n")
  w.writerow(["id", "text", "title"])
  for pid, text, title in passages:
    w.writerow([pid, " ".join(text.split()), " ".join(title.split())])
  write_gz(os.path.join(nq_dir, "passages.tsv.gz"), buf.getvalue().encode("utf-8"))
  print(
      {k: len(v) for k, v in splits.items()},
      "passages:",
      len(passages),
      "gold:",
      sum(p[0].startswith("nq") for p in passages),
  )


if __name__ == "__main__":
  main()
