"""Every bad-input case: the error names file, line (or record) and field; the CLIs exit non-zero
without a traceback; --skip_invalid / skip_invalid=True skips, counts and reports."""

import json
import subprocess
import sys

import pytest

from rrpo_jax.data import DataError, read_examples

GOOD = {
    "id": "q0",
    "question": "who wrote hamlet",
    "answers": ["Shakespeare"],
    "ctxs": [{"id": "p1", "title": "Hamlet", "text": "A play by Shakespeare."}],
}


def _line(**changes):
  row = dict(GOOD, **changes)
  return json.dumps({k: v for k, v in row.items() if v is not ...}).encode()


# (name, bad line 2 as bytes, expected field in the message, expected message fragment)
CASES = [
    ("malformed_json", b'{"id": "q1", "question": "x", "answers": ["a"],', "record", "malformed JSON"),
    ("missing_field", _line(id="q1", question=...), "field 'question'", "missing required field"),
    ("answer_not_string", _line(id="q1", answers=["ok", 42]), "field 'answers[1]'", "not a string"),
    ("answers_not_list", _line(id="q1", answers="Shakespeare"), "field 'answers'", "list of strings"),
    ("empty_candidates", _line(id="q1", ctxs=[]), "field 'ctxs'", "empty candidate list"),
    ("duplicate_qid", _line(id="q0"), "field 'id'", "duplicate query id 'q0' (first at line 1)"),
    ("invalid_utf8", _line(id="q1").replace(b"hamlet", b"haml\xff\xfet"), "record", "invalid UTF-8"),
]


def _write(tmp_path, bad: bytes):
  path = tmp_path / "bad.jsonl"
  path.write_bytes(_line() + b"\n" + bad + b"\n" + _line(id="q9") + b"\n")
  return path


@pytest.mark.parametrize("name, bad, field, fragment", CASES, ids=[c[0] for c in CASES])
def test_read_examples_names_file_line_field(tmp_path, name, bad, field, fragment):
  path = _write(tmp_path, bad)
  with pytest.raises(DataError) as e:
    read_examples(path, format="dpr")
  message = str(e.value)
  assert message.startswith(f"{path}: line 2: {field}: ") and fragment in message
  assert e.value.line == 2
  examples, report = read_examples(path, format="dpr", skip_invalid=True)
  assert [x.qid for x in examples] == ["q0", "q9"]
  assert (report.n_read, report.n_skipped) == (2, 1) and fragment in report.errors[0]


@pytest.mark.parametrize("name, bad, field, fragment", CASES, ids=[c[0] for c in CASES])
def test_convert_cli_exit_code_no_traceback(tmp_path, name, bad, field, fragment):
  path, out = _write(tmp_path, bad), tmp_path / "out.jsonl"
  cmd = [sys.executable, "-m", "rrpo_jax.data.convert", "--format=dpr", str(path), str(out)]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert f"error: {path}: line 2: {field}: " in proc.stderr and fragment in proc.stderr
  assert not out.exists()
  proc = subprocess.run(cmd[:3] + ["--skip_invalid"] + cmd[3:], capture_output=True, text=True)
  assert proc.returncode == 0 and "Traceback" not in proc.stderr
  assert "2 examples read, 1 invalid records skipped" in proc.stderr and fragment in proc.stderr
  assert len(out.read_text().splitlines()) == 2


def test_json_document_record_errors(tmp_path):
  rows = [
      {"_id": "a", "question": "q?", "answer": "x", "supporting_facts": [], "context": [["T", ["x y"]]]},
      {"_id": "b", "question": "q?", "answer": 3, "supporting_facts": [], "context": [["T", ["x"]]]},
  ]
  path = tmp_path / "hotpot.json"
  path.write_text(json.dumps(rows))
  with pytest.raises(DataError, match=r"hotpot.json: record 2: field 'answer': expected a string"):
    read_examples(path, format="hotpotqa")
  examples, report = read_examples(path, format="hotpotqa", skip_invalid=True)
  assert [e.qid for e in examples] == ["a"] and report.n_skipped == 1


def test_unreadable_json_document_is_fatal_even_when_skipping(tmp_path):
  path = tmp_path / "hotpot.json"
  path.write_bytes(b'[{"_id": "a",\n "question": "caf\xe9"}]')
  with pytest.raises(DataError, match=r"hotpot.json: line 2: record: invalid UTF-8"):
    read_examples(path, format="hotpotqa", skip_invalid=True)


def test_tsv_errors(tmp_path):
  path = tmp_path / "trivia.txt"
  path.write_text("q1?\t['a']\nq2?\tnot a list(\nq3?\n")
  with pytest.raises(DataError, match=r"trivia.txt: line 2: field 'answers': not a Python list"):
    read_examples(path, format="triviaqa_dpr")
  examples, report = read_examples(path, format="triviaqa_dpr", skip_invalid=True)
  assert len(examples) == 1 and report.n_skipped == 2 and "field 'columns'" in report.errors[1]


def test_bm25_cli_bad_corpus_row(tmp_path):
  corpus, questions, out = tmp_path / "c.tsv", tmp_path / "q.jsonl", tmp_path / "o.jsonl"
  corpus.write_text("id\ttext\ttitle\n1\tapple pie\tA\n2\tonly two columns\n3\tbanana\tB\n")
  questions.write_text('{"question": "apple", "answer": ["pie"]}\n')
  cmd = [
      sys.executable,
      "-m",
      "rrpo_jax.data.bm25",
      f"--corpus={corpus}",
      f"--questions={questions}",
      "--questions_format=nq_open",
      "--top_n=2",
      f"--out={out}",
  ]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert f"{corpus}: line 3: field 'columns'" in proc.stderr
  proc = subprocess.run(cmd + ["--skip_invalid"], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  assert "1 invalid records skipped" in proc.stderr
  assert [c["id"] for c in json.loads(out.read_text())["ctxs"]] == ["1", "3"]
