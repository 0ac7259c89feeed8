"""Format adapters on real rows of the bundled sample (hand-written fixtures for the formats it does
not contain), has_answer hand cases, the JSONL round trip and the convert CLI."""

import gzip
import json
import subprocess
import sys

import pytest

from rrpo_jax.data import DataError, Example, read_examples, write_examples
from rrpo_jax.data.example import candidate
from rrpo_jax.data.sample import SAMPLE_DIR, sample_path

NQ, HP = SAMPLE_DIR / "nq", SAMPLE_DIR / "hotpotqa"


@pytest.fixture(scope="module")
def nq_sample_dev(request):
  # the cache is fingerprinted by the sample files, so pytest's cache folder is safe to reuse
  return sample_path("nq", "dev", cache_dir=request.config.cache.mkdir("rrpo_jax_data"))


def test_nq_open_real_rows():
  examples, report = read_examples(NQ / "questions.dev.jsonl", format="nq_open")
  assert report.n_read == len(examples) == 200 and report.n_skipped == 0
  first = json.loads((NQ / "questions.dev.jsonl").read_text(encoding="utf-8").splitlines()[0])
  ex = examples[0]
  assert (ex.qid, ex.question, ex.answers) == (first["id"], first["question"], first["answer"])
  assert ex.candidates == [] and ex.meta == {"gold_pid": first["gold_pid"]}


def test_hotpotqa_original_real_rows():
  examples, _ = read_examples(HP / "train.hotpotqa.json.gz", format="hotpotqa")
  raw = json.loads(gzip.open(HP / "train.hotpotqa.json.gz").read())
  assert len(examples) == len(raw) == 100
  ex, r = examples[0], raw[0]
  assert ex.qid == r["_id"] and ex.answers == [r["answer"]]
  assert [c.title for c in ex.candidates] == [t for t, _ in r["context"]]
  assert ex.candidates[0].text == "".join(r["context"][0][1]).strip()
  gold = {t for t, _ in r["supporting_facts"]}
  assert [c.is_supporting for c in ex.candidates] == [c.title in gold for c in ex.candidates]
  assert ex.meta == {"type": r["type"], "level": r["level"]}
  # yes/no answers never occur in a passage: the dataset's labels are what marks their gold passages
  yes_no = [e for e in examples if e.answers[0] in ("yes", "no")]
  assert yes_no and all(sum(c.is_supporting for c in e.candidates) == 2 for e in yes_no)


def test_hotpotqa_ircot_real_rows():
  examples, _ = read_examples(HP / "dev.ircot.jsonl.gz", format="hotpotqa_ircot")
  r = json.loads(gzip.open(HP / "dev.ircot.jsonl.gz").readline())
  ex = examples[0]
  assert len(examples) == 100 and ex.qid == r["question_id"] and ex.question == r["question_text"]
  assert ex.answers == r["answers_objects"][0]["spans"]
  assert [c.text for c in ex.candidates] == [c["paragraph_text"] for c in r["contexts"]]
  assert [c.is_supporting for c in ex.candidates] == [c["is_supporting"] for c in r["contexts"]]
  assert all(sum(c.is_supporting for c in e.candidates) == 2 and len(e.candidates) == 10 for e in examples)


def test_dpr_real_rows_and_round_trip(nq_sample_dev, tmp_path):
  examples, _ = read_examples(nq_sample_dev, format="dpr")
  assert len(examples) == 200 and all(len(e.candidates) == 20 for e in examples)
  out = tmp_path / "copy.jsonl.gz"
  write_examples(out, examples)
  again, _ = read_examples(out, format="dpr")
  assert again == examples


def test_dpr_original_layout_json_list(tmp_path):
  # DPR's dense_retriever.py output: a JSON list, scores as strings, its own has_answer labels
  rows = [
      {
          "question": "who wrote hamlet",
          "answers": ["Shakespeare"],
          "ctxs": [
              {
                  "id": "123",
                  "title": "Hamlet",
                  "text": "Hamlet is a tragedy by William Shakespeare.",
                  "score": "81.5",
                  "has_answer": False,
              },
              {"id": 7, "title": "Othello", "text": "Othello is a play.", "score": 70.25, "has_answer": True},
          ],
      }
  ]
  path = tmp_path / "dpr.json"
  path.write_text(json.dumps(rows), encoding="utf-8")
  (ex,), _ = read_examples(path, format="dpr")
  assert ex.qid == "1" and [c.pid for c in ex.candidates] == ["123", "7"]
  assert [c.score for c in ex.candidates] == [81.5, 70.25]
  assert [c.has_answer for c in ex.candidates] == [True, False]  # recomputed, not copied
  assert [c.is_supporting for c in ex.candidates] == [None, None]


def test_musique_fixture(tmp_path):
  row = {
      "id": "2hop__1_2",
      "question": "Who founded the label of Artist X?",
      "answer": "John Smith",
      "answer_aliases": ["J. Smith"],
      "answerable": True,
      "paragraphs": [
          {"idx": 0, "title": "Artist X", "paragraph_text": "Artist X is signed to Label Y.", "is_supporting": True},
          {"idx": 1, "title": "Label Y", "paragraph_text": "Label Y was founded by J. Smith.", "is_supporting": True},
          {"idx": 2, "title": "Other", "paragraph_text": "Unrelated text.", "is_supporting": False},
      ],
      "question_decomposition": [],
  }
  path = tmp_path / "musique.jsonl"
  path.write_text(json.dumps(row) + "\n", encoding="utf-8")
  (ex,), _ = read_examples(path, format="musique")
  assert ex.answers == ["John Smith", "J. Smith"] and ex.meta == {"answerable": True}
  assert [c.pid for c in ex.candidates] == ["2hop__1_2#0", "2hop__1_2#1", "2hop__1_2#2"]
  assert [c.is_supporting for c in ex.candidates] == [True, True, False]
  assert [c.has_answer for c in ex.candidates] == [False, True, False]


def test_ambignq_fixture(tmp_path):
  rows = [
      {
          "id": "a1",
          "question": "when did the simpsons first air",
          "annotations": [
              {
                  "type": "multipleQAs",
                  "qaPairs": [
                      {"question": "as a short?", "answer": ["April 19, 1987"]},
                      {"question": "as a series?", "answer": ["December 17, 1989", "1989"]},
                  ],
              },
              {"type": "singleAnswer", "answer": ["December 17, 1989"]},
          ],
      }
  ]
  path = tmp_path / "dev_light.json"
  path.write_text(json.dumps(rows), encoding="utf-8")
  (ex,), _ = read_examples(path, format="ambignq")
  assert ex.qid == "a1" and ex.answers == ["April 19, 1987", "December 17, 1989", "1989"]
  assert ex.meta == {"n_interpretations": 2}


def test_triviaqa_dpr_fixture(tmp_path):
  # the real file's layout: CRLF, a Python-literal list, csv quote-doubling on some rows
  text = (
      "Which planet is the Red Planet?\t['Mars', 'Planet Mars']\r\n"
      'What is ""Bh"" short for?\t"[\'Bh\', ""Bh\'""]"\r\n'
  )
  path = tmp_path / "trivia.txt"
  path.write_bytes(text.encode("utf-8"))
  a, b = read_examples(path, format="triviaqa_dpr")[0]
  assert (a.qid, a.question, a.answers) == ("1", "Which planet is the Red Planet?", ["Mars", "Planet Mars"])
  assert b.answers == ["Bh", "Bh'"]


@pytest.mark.parametrize(
    "text, answers, expected",
    [
        ("The Eiffel Tower is in Paris.", ["paris"], True),  # case and punctuation
        ("Paris Hilton stayed", ["Paris, France"], False),  # every answer token must be there, in order
        ("It was built by the Beatles", ["The Beatles"], True),  # articles dropped on both sides
        ("Won in 1990 and 1991.", ["1"], False),  # token boundaries: "1" is not inside "1990"
        ("Sold 1,000 copies", ["1000"], True),  # punctuation removed inside tokens
        ("Wilhelm Conrad Röntgen won it", ["Wilhelm Conrad Röntgen"], True),  # unicode kept
        ("ＰＡＲＩＳ is big", ["Paris"], True),  # full-width folded by NFKC
        ("Anything", ["the"], False),  # empty after normalisation never matches
        ("yes it is", ["no"], False),
    ],
)
def test_has_answer_hand_cases(text, answers, expected):
  assert candidate("p", "title", text, answers).has_answer is expected


def test_convert_cli(tmp_path):
  out = tmp_path / "out.jsonl"
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "rrpo_jax.data.convert",
          "--format=hotpotqa_ircot",
          str(HP / "dev.ircot.jsonl.gz"),
          str(out),
      ],
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0, proc.stderr
  assert "100 examples read, 0 invalid records skipped" in proc.stderr
  examples, _ = read_examples(out, format="dpr")
  assert examples == read_examples(HP / "dev.ircot.jsonl.gz", format="hotpotqa_ircot")[0]


def test_question_only_round_trip(tmp_path):
  ex = Example("q1", "who?", ["me"])
  write_examples(tmp_path / "q.jsonl", [ex])
  assert "ctxs" not in json.loads((tmp_path / "q.jsonl").read_text())
  (back,), _ = read_examples(tmp_path / "q.jsonl", format="dpr", require_candidates=False)
  assert back == ex


# One hand-written record per JSON format (two queries each), for the layout tests.
def _records(fmt):
  if fmt == "dpr":
    return [
        {
            "id": f"q{i}",
            "question": f"who wrote play {i}",
            "answers": ["Shakespeare"],
            "ctxs": [{"id": f"p{i}", "title": "Hamlet", "text": "A play by Shakespeare.", "score": 1.5}],
        }
        for i in range(2)
    ]
  if fmt == "hotpotqa":
    return [
        {
            "_id": f"q{i}",
            "question": "which river?",
            "answer": "Seine",
            "supporting_facts": [["Paris", 0]],
            "context": [["Paris", ["Paris is on the ", "Seine."]], ["Rome", ["Rome is not."]]],
            "type": "bridge",
            "level": "easy",
        }
        for i in range(2)
    ]
  if fmt == "hotpotqa_ircot":
    return [
        {
            "question_id": f"q{i}",
            "question_text": "which river?",
            "answers_objects": [{"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": ["Seine"]}],
            "contexts": [
                {"idx": 0, "title": "Paris", "paragraph_text": "Paris is on the Seine.", "is_supporting": True}
            ],
        }
        for i in range(2)
    ]
  if fmt == "musique":
    return [
        {
            "id": f"2hop__{i}",
            "question": "Who founded Label Y?",
            "answer": "John Smith",
            "answer_aliases": [],
            "answerable": True,
            "paragraphs": [
                {"idx": 0, "title": "Label Y", "paragraph_text": "Founded by John Smith.", "is_supporting": True}
            ],
        }
        for i in range(2)
    ]
  if fmt == "nq_open":
    return [{"question": f"who sang song {i}", "answer": ["Elvis"]} for i in range(2)]
  assert fmt == "ambignq"
  return [
      {"id": f"a{i}", "question": "when?", "annotations": [{"type": "singleAnswer", "answer": ["1989"]}]}
      for i in range(2)
  ]


JSON_FORMATS = ["dpr", "hotpotqa", "hotpotqa_ircot", "musique", "nq_open", "ambignq"]
LAYOUTS = {
    "jsonl": lambda rows: "".join(json.dumps(r) + "\n" for r in rows),
    "array": json.dumps,
    "array_pretty": lambda rows: "\n\n" + json.dumps(rows, indent=2),
    "data_wrapper": lambda rows: json.dumps({"version": "1.0", "data": rows}, indent=1),
    "bom_jsonl": lambda rows: "\ufeff" + "".join(json.dumps(r) + "\r\n" for r in rows),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_every_json_format_reads_both_layouts(tmp_path, fmt, gz):
  # told apart by the content: the file names say nothing (MuSiQue's release is JSON Lines; others
  # redistribute it as a JSON list)
  rows, got = _records(fmt), {}
  for name, dump in LAYOUTS.items():
    data = dump(rows).encode("utf-8")
    path = tmp_path / f"{name}.data"
    path.write_bytes(gzip.compress(data) if gz else data)
    examples, report = read_examples(path, format=fmt)
    assert report.n_read == 2 and report.n_skipped == 0
    got[name] = examples
  assert all(v == got["jsonl"] for v in got.values())
  if fmt == "nq_open":  # no id field: the position, line or record, is the id
    assert [e.qid for e in got["jsonl"]] == ["1", "2"]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_layout_errors_name_line_or_record(tmp_path, fmt):
  rows = _records(fmt)
  bad = dict(rows[1])
  del bad["question_text" if fmt == "hotpotqa_ircot" else "question"]
  field = "question_text" if fmt == "hotpotqa_ircot" else "question"
  for name, unit in (("jsonl", "line"), ("array_pretty", "record")):
    path = tmp_path / f"{name}.json"
    path.write_text(LAYOUTS[name]([rows[0], bad]), encoding="utf-8")
    with pytest.raises(DataError) as e:
      read_examples(path, format=fmt)
    assert str(e.value) == f"{path}: {unit} 2: field '{field}': missing required field"
    examples, report = read_examples(path, format=fmt, skip_invalid=True)
    assert len(examples) == 1 and report.n_skipped == 1


def test_musique_as_a_json_array(tmp_path):
  # the case: an array used to stop with "expected a JSON object, got list"
  path = tmp_path / "musique_ans_v1.0_dev.jsonl"  # a misleading name: the content decides
  path.write_text(json.dumps(_records("musique")), encoding="utf-8")
  examples, _ = read_examples(path, format="musique")
  assert [e.qid for e in examples] == ["2hop__0", "2hop__1"]
  assert [c.pid for c in examples[0].candidates] == ["2hop__0#0"]


def test_a_bad_first_line_of_json_lines_is_skipped_not_fatal(tmp_path):
  path = tmp_path / "q.jsonl"
  rows = _records("musique")
  path.write_text('{"id": "broken", "question": \n' + "".join(json.dumps(r) + "\n" for r in rows))
  with pytest.raises(DataError, match=r"q.jsonl: line 1: record: malformed JSON"):
    read_examples(path, format="musique")
  examples, report = read_examples(path, format="musique", skip_invalid=True)
  assert len(examples) == 2 and report.n_skipped == 1
