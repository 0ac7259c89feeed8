"""Property-based fuzzing (hypothesis) of every data adapter, the convert and BM25 command lines.

Files are built from valid records (which must all arrive) mixed with mutated ones: fields deleted or
replaced by values of the wrong type, huge strings, empty lists, invalid UTF-8, unpaired surrogates,
truncated lines, duplicated ids; in JSON Lines and JSON-list layouts, plain or gzip. Only the
project's DataError may come out (one line, naming the file and the line or record); with
skip_invalid every valid record arrives and every record is either read or counted as skipped.

CI runs the "ci" profile (tests/conftest.py); HYPOTHESIS_PROFILE=long runs ~40x more examples:
  HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz_data.py tests/test_fuzz_config.py
RRPO_FUZZ_STATS=counts.json also writes the counts (inputs, clear errors, valid records and those
that arrived) that docs/reliability.md's table quotes.
"""

import collections
import contextlib
import csv
import gzip
import io
import json
import os
import re
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from rrpo_jax.data import DataError, bm25, convert, read_examples
from rrpo_jax.data.formats import FORMATS
from rrpo_jax.data.records import json_records

HUGE = "x" * 300_000  # a huge field (kept moderate: each example writes and parses it)
FUZZ = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
)
CLI = settings(FUZZ, max_examples=max(10, settings.default.max_examples // 2))  # slower per example

STATS = collections.Counter()  # per test: inputs, clear_errors, valid_records, valid_arrived


@pytest.fixture(scope="module", autouse=True)
def _write_stats():
  yield
  path = os.environ.get("RRPO_FUZZ_STATS")
  if path:
    old = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    with open(path, "w", encoding="utf-8") as f:
      json.dump({k: old.get(k, 0) + STATS[k] for k in {**old, **STATS}}, f, indent=1, sort_keys=True)
  STATS.clear()


def _count(test: str, *, error: bool, valid: int = 0, arrived: int = 0) -> None:
  STATS[f"{test}.inputs"] += 1
  STATS[f"{test}.clear_errors"] += error
  STATS[f"{test}.valid_records"] += valid
  STATS[f"{test}.valid_arrived"] += arrived


# ------------------------------------------------------------------------------ strategies
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda s: s.strip()
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.just(""),
    st.just(HUGE),
    st.just(10**4000),
    st.just("\ud800"),
    st.just("\udfff tail"),
    st.just(float("nan")),
    st.just(float("inf")),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


# Format name -> (the field holding the query id, a builder of a record the adapter must accept:
# build(draw, qid, question, answer, texts) -> record). Every format in FORMATS has one here or is
# fuzzed by its own test (OWN_FUZZ_TEST); test_every_registered_format_is_fuzzed names a missing one.
RECORDS: dict[str, tuple[str, Callable[..., Any]]] = {}
OWN_FUZZ_TEST = {"triviaqa_dpr": "test_triviaqa_tsv_fuzz"}  # not JSON: rows of its own layout


def record_builder(fmt: str, *, id_key: str):
  """Decorator: registers `build` as the fuzzers' valid-record builder of the format `fmt`."""

  def add(build):
    RECORDS[fmt] = (id_key, build)
    return build

  return add


@record_builder("dpr", id_key="id")
def _dpr(draw, qid, question, answer, texts):
  return {
      "id": qid,
      "question": question,
      "answers": [answer, *draw(st.lists(st.text(max_size=8), max_size=2))],
      "ctxs": [
          {
              "id": f"p{j}",
              "title": draw(st.text(max_size=8)),
              "text": t,
              "score": draw(st.one_of(st.none(), st.floats(-1e6, 1e6), st.just("12.5"))),
          }
          for j, t in enumerate(texts)
      ],
  }


@record_builder("hotpotqa", id_key="_id")
def _hotpotqa(draw, qid, question, answer, texts):
  titles = [f"T{j}{draw(st.text(max_size=4))}" for j in range(len(texts))]
  return {
      "_id": qid,
      "question": question,
      "answer": answer,
      "supporting_facts": [[titles[0], 0]],
      "context": [[t, [x, "."]] for t, x in zip(titles, texts)],
      "type": "bridge",
  }


@record_builder("hotpotqa_ircot", id_key="question_id")
def _hotpotqa_ircot(draw, qid, question, answer, texts):
  return {
      "question_id": qid,
      "question_text": question,
      "answers_objects": [{"number": draw(st.sampled_from(["", 3, None])), "spans": [answer]}],
      "contexts": [
          {"idx": j, "title": f"T{j}", "paragraph_text": t, "is_supporting": j == 0} for j, t in enumerate(texts)
      ],
  }


@record_builder("musique", id_key="id")
def _musique(draw, qid, question, answer, texts):
  return {
      "id": qid,
      "question": question,
      "answer": answer,
      "answer_aliases": draw(st.lists(st.text(max_size=6))),
      "answerable": draw(st.booleans()),
      "paragraphs": [
          {"idx": j, "title": "T", "paragraph_text": t, "is_supporting": draw(st.booleans())}
          for j, t in enumerate(texts)
      ],
  }


@record_builder("nq_open", id_key="id")
def _nq_open(draw, qid, question, answer, texts):
  return {"id": qid, "question": question, "answer": [answer], "extra": draw(plain_values)}


@record_builder("ambignq", id_key="id")
def _ambignq(draw, qid, question, answer, texts):
  return {
      "id": qid,
      "question": question,
      "annotations": [
          {"type": "singleAnswer", "answer": [answer]},
          {"type": "multipleQAs", "qaPairs": [{"question": "q", "answer": [draw(words)]}]},
      ],
  }


# The JSON formats the adapter fuzzing covers: the registered ones with a builder, in registry order.
JSON_FORMATS = [f for f in FORMATS if f in RECORDS]


def test_every_registered_format_is_fuzzed():
  missing = [f for f in FORMATS if f not in RECORDS and f not in OWN_FUZZ_TEST]
  assert not missing, (
      f"format(s) {missing} registered in rrpo_jax/data/formats.py have no fuzz record builder: add one "
      "to tests/test_fuzz_data.py (@record_builder(name, id_key=...) returning a record the adapter must "
      "accept), or name the format's own fuzz test in OWN_FUZZ_TEST"
  )
  stale = sorted(set(RECORDS) - set(FORMATS)) + sorted(set(OWN_FUZZ_TEST) - set(FORMATS))
  assert not stale, f"fuzz builders for formats that are not registered: {stale}"
  not_json = [f for f in RECORDS if FORMATS[f].records is not json_records]
  assert not not_json, f"{not_json}: the builders write JSON records; these formats read another layout"
  gone = [test for test in OWN_FUZZ_TEST.values() if test not in globals()]
  assert not gone, f"OWN_FUZZ_TEST names tests that do not exist: {gone}"


@st.composite
def valid_record(draw, fmt, i):
  """A record of `fmt` that the adapter must accept, with query id f"valid-{i}"."""
  qid, question = f"valid-{i}", draw(words)
  answer = draw(words)
  texts = draw(st.lists(st.text(max_size=40), min_size=1, max_size=4))
  return RECORDS[fmt][1](draw, qid, question, answer, texts)


def _paths(obj, prefix=()):
  """Every path (tuple of keys / indices) to a value inside obj."""
  out = [prefix] if prefix else []
  if isinstance(obj, dict):
    for k, v in obj.items():
      out += _paths(v, prefix + (k,))
  elif isinstance(obj, list):
    for k, v in enumerate(obj):
      out += _paths(v, prefix + (k,))
  return out


def _set(obj, path, value, delete=False):
  node = obj
  for k in path[:-1]:
    node = node[k]
  if delete:
    del node[path[-1]]
  else:
    node[path[-1]] = value


@st.composite
def mutated(draw, record, i, id_key):
  """A structurally mutated copy of `record` (may still be valid), its id (record[id_key]) moved to f"m{i}"."""
  obj = json.loads(json.dumps(record))
  obj[id_key] = f"m{i}"
  for _ in range(draw(st.integers(1, 3))):
    paths = _paths(obj)
    if not paths:
      break
    path = draw(st.sampled_from(paths))
    kind = draw(st.sampled_from(["delete", "replace", "empty_list", "huge", "surrogate"]))
    if kind == "delete":
      _set(obj, path, None, delete=True)
    else:
      _set(
          obj,
          path,
          {"replace": None, "empty_list": [], "huge": HUGE, "surrogate": "a\udc80b"}.get(kind)
          if kind != "replace"
          else draw(json_values),
      )
  if draw(st.booleans()) and draw(st.booleans()):
    obj = draw(json_values)  # not a record at all
  return obj


@st.composite
def data_file(draw, fmt, *, layout=None):
  """(bytes of a file, valid qids in order, number of records, the layout)."""
  layout = layout or draw(st.sampled_from(["lines", "array"]))
  id_key = RECORDS[fmt][0]
  n = draw(st.integers(0, 6))
  valid = [draw(valid_record(fmt, i)) for i in range(n)]
  items = [("valid", v) for v in valid]
  for i in range(draw(st.integers(0, 5))):
    base = draw(valid_record(fmt, 100 + i))
    kind = draw(
        st.sampled_from(
            ["mutate", "mutate", "duplicate", "raw"] if layout == "lines" else ["mutate", "mutate", "duplicate"]
        )
    )
    if kind == "duplicate" and items:
      at = draw(st.integers(0, len(items) - 1))
      if items[at][0] == "valid":
        items.insert(draw(st.integers(at + 1, len(items))), ("dup", json.loads(json.dumps(items[at][1]))))
      continue
    record = draw(mutated(base, i, id_key)) if kind != "raw" else base
    items.insert(draw(st.integers(0, len(items))), (kind, record))
  if layout == "array":
    data = json.dumps([obj for _, obj in items], indent=draw(st.sampled_from([None, 1]))).encode()
  else:
    lines = []
    for kind, obj in items:
      line = json.dumps(obj).encode()
      if kind == "raw":
        how = draw(st.sampled_from(["utf8", "truncate", "bytes", "bigint"]))
        if how == "utf8":
          at = draw(st.integers(0, len(line)))
          line = line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + line[at:]
        elif how == "truncate":
          line = line[: draw(st.integers(1, max(1, len(line) - 1)))]
        elif how == "bigint":
          line = line[:-1] + b', "n": 1' + b"0" * 5000 + b"}"
        else:
          line = draw(st.binary(min_size=1, max_size=30)).replace(b"\n", b" ")
        if not line.decode("utf-8", "replace").strip():
          line = b"{"
      lines.append(line)
    if lines and lines[0].lstrip().startswith(b"["):  # a list on the first line reads as a JSON document
      lines[0] = b'{"first": "not a record"}'
    data = b"".join(x + draw(st.sampled_from([b"\n", b"\r\n"])) for x in lines)
  if data.startswith(b"\x1f\x8b"):  # random bytes that look like gzip would be a corrupt gzip file
    data = b"\n" + data
  if draw(st.booleans()):
    data = gzip.compress(data, mtime=0)
  qids = [v[id_key] for kind, v in items if kind == "valid"]
  return data, qids, len(items), layout


def _one_line_error(e: DataError, path) -> None:
  text = str(e)
  assert "\n" not in text and "\r" not in text and len(text) < 600, text[:300]
  assert text.startswith(f"{path}: "), text
  if e.line is not None:
    assert re.match(rf"{re.escape(str(path))}: (line|record) {e.line}: (record|field '.+?'): ", text), text


# ------------------------------------------------------------------------------ adapters
@FUZZ
@pytest.mark.parametrize("fmt", JSON_FORMATS)
@given(st.data())
def test_adapters_only_raise_data_errors_and_keep_every_valid_record(tmp_path, fmt, data):
  blob, qids, n_records, layout = data.draw(data_file(fmt))
  path = tmp_path / f"{fmt}.data"
  path.write_bytes(blob)
  error = False
  try:
    examples, report = read_examples(path, format=fmt)
    assert report.n_skipped == 0 and len(examples) == n_records
  except DataError as e:
    _one_line_error(e, path)
    error = True
  examples, report = read_examples(path, format=fmt, skip_invalid=True)
  arrived = [e.qid for e in examples if e.qid.startswith("valid-")]
  _count("adapters", error=error, valid=len(qids), arrived=len(arrived))
  assert arrived == qids  # every valid record, in order
  assert report.n_read + report.n_skipped == n_records
  for line in report.errors:
    assert "\n" not in line and line.startswith(f"{path}: ")


@FUZZ
@given(
    rows=st.lists(
        st.one_of(
            st.tuples(words, st.lists(words, min_size=1, max_size=3)).map(lambda qa: ("valid", qa)),
            st.binary(max_size=40).map(lambda b: ("raw", b)),
            st.text(max_size=40).map(lambda t: ("raw", t.encode("utf-8", "surrogatepass"))),
            st.sampled_from(
                [
                    b"q\t" + b"[" * 5000,
                    b"q\t" + b"1" * 5000,
                    b"q\t{[]: 1}",
                    b"q\t" + b"a" * 200_000,
                    b'q\t"unterminated',
                    b"q\t['a']\t3",
                    b"\x00\t['a']",
                ]
            ).map(lambda b: ("raw", b)),
        ),
        max_size=8,
    )
)
def test_triviaqa_tsv_fuzz(tmp_path, rows):
  lines, n_valid = [], 0
  for kind, row in rows:
    if kind == "valid":
      question, answers = row
      question = " ".join(question.replace("\t", " ").replace('"', " ").split()) or "q"
      lines.append(f"{question}\t{answers!r}".replace("\n", " ").replace("\r", " ").encode("utf-8"))
      n_valid += 1
    else:
      lines.append(row.replace(b"\n", b" ").replace(b"\r", b" "))
  path = tmp_path / "trivia.txt"
  path.write_bytes(b"\n".join(lines) + b"\n")
  error = False
  try:
    read_examples(path, format="triviaqa_dpr")
  except DataError as e:
    _one_line_error(e, path)
    error = True
  examples, report = read_examples(path, format="triviaqa_dpr", skip_invalid=True)
  _count("adapters", error=error, valid=n_valid, arrived=min(len(examples), n_valid))
  assert len(examples) >= n_valid
  non_blank = sum(1 for x in lines if x.decode("utf-8", "replace").strip())
  assert report.n_read + report.n_skipped == non_blank


# ------------------------------------------------------------------------------ command lines
def _cli(main, argv) -> tuple[int, str]:
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      code = main(argv)
    except SystemExit as e:  # argparse usage errors
      code = e.code
  return code, err.getvalue()


def _clean_failure(code: int, stderr: str, path) -> None:
  assert "Traceback" not in stderr
  assert code in (1, 2), stderr
  errors = [x for x in stderr.splitlines() if x.startswith("error: ")]
  assert len(errors) == 1 and errors[0].startswith(f"error: {path}"), stderr


@CLI
@pytest.mark.parametrize("fmt", ["dpr", "musique", "hotpotqa", "nq_open"])
@given(st.data())
def test_convert_cli_fuzz(tmp_path, fmt, data):
  blob, qids, n_records, _ = data.draw(data_file(fmt))
  src, out = tmp_path / "in.data", tmp_path / "out.jsonl"
  src.write_bytes(blob)
  out.unlink(missing_ok=True)
  code, stderr = _cli(convert.main, [f"--format={fmt}", str(src), str(out)])
  if code:
    _clean_failure(code, stderr, src)
    assert not out.exists()
  STATS["convert.inputs"] += 1
  STATS["convert.clear_errors"] += bool(code)
  code, stderr = _cli(convert.main, [f"--format={fmt}", "--skip_invalid", str(src), str(out)])
  assert code == 0 and "Traceback" not in stderr, stderr
  back, report = read_examples(out, format="dpr", require_candidates=fmt != "nq_open")
  assert report.n_skipped == 0
  arrived = [e.qid for e in back if e.qid.startswith("valid-")]
  STATS["convert.valid_records"] += len(qids)
  STATS["convert.valid_arrived"] += len(arrived)
  assert arrived == qids
  skipped = int(re.search(r"(\d+) invalid records skipped", stderr).group(1))
  assert len(back) + skipped == n_records


@st.composite
def corpus_file(draw):
  """(bytes of a psgs_w100-style TSV, number of well-formed rows)."""
  rows, good = [b"id\ttext\ttitle"] if draw(st.booleans()) else [], 0
  for j in range(draw(st.integers(0, 8))):
    kind = draw(st.sampled_from(["good", "good", "good", "columns", "utf8", "empty_id", "huge", "raw", "stop"]))
    text = " ".join(
        draw(st.lists(st.sampled_from(["apple", "pie", "the", "of", "paris", "x", "Ünïcode", "42"]), max_size=6))
    )
    row = {
        "good": f"p{j}\t{text}\tT{j}".encode(),
        "columns": f"p{j}\t{text}".encode(),
        "utf8": f"p{j}\t{text}\tT".encode() + b"\xff",
        "empty_id": f" \t{text}\tT".encode(),
        "huge": f"p{j}\t".encode() + b"y " * 100_000 + b"\tT",
        "stop": f"p{j}\tthe of a\tthe".encode(),
        "raw": draw(st.binary(max_size=30)).replace(b"\n", b" ").replace(b"\r", b" "),
    }[kind]
    good += kind in ("good", "huge", "stop")
    rows.append(row)
  data = b"".join(r + b"\n" for r in rows)
  return (gzip.compress(data, mtime=0) if draw(st.booleans()) else data), good


@CLI
@given(
    corpus=corpus_file(),
    questions=st.lists(st.one_of(words, st.just("the of"), st.just("apple pie")), max_size=3),
    top_n=st.integers(1, 4),
)
def test_bm25_cli_fuzz(tmp_path, corpus, questions, top_n):
  blob, good = corpus
  src, qs, out = tmp_path / "c.tsv", tmp_path / "q.jsonl", tmp_path / "o.jsonl"
  src.write_bytes(blob)
  qs.write_text("".join(json.dumps({"question": q, "answer": ["pie"]}) + "\n" for q in questions))
  out.unlink(missing_ok=True)
  argv = [
      f"--corpus={src}",
      f"--questions={qs}",
      "--questions_format=nq_open",
      f"--top_n={top_n}",
      f"--out={out}",
      "--chunk_size=3",
      f"--tmp_dir={tmp_path}",
  ]
  code, stderr = _cli(bm25.main, argv)
  if code:
    _clean_failure(code, stderr, src)
  STATS["bm25.inputs"] += 1
  STATS["bm25.clear_errors"] += bool(code)
  code, stderr = _cli(bm25.main, argv + ["--skip_invalid"])
  if good == 0:  # nothing to retrieve from: a clear error, not a file of empty candidate lists
    _clean_failure(code, stderr, src)
    assert "no passages" in stderr
    return
  assert code == 0 and "Traceback" not in stderr, stderr
  STATS["bm25.valid_records"] += good
  STATS["bm25.valid_arrived"] += good * (f"indexed {good} passages" in stderr)
  assert f"indexed {good} passages" in stderr  # every well-formed passage was indexed
  back, _ = read_examples(out, format="dpr", require_candidates=False)
  assert len(back) == len(questions)
  assert all(len(e.candidates) <= min(top_n, good) for e in back)


# ------------------------------------------------------------------------------ regressions
# Bugs the fuzzing found, each pinned by its smallest input.
@pytest.mark.parametrize(
    "fmt, line, field, fragment",
    [
        ("dpr", '{"question": "q", "answers": ["a"], "id": 1' + "0" * 5000 + "}", None, "integer string conversion"),
        ("dpr", "[" * 100_000, None, "nested too deeply"),  # was RecursionError
        (
            "dpr",
            '{"question": "q", "answers": ["a"], "ctxs": [{"text": "t", "score": 1e999}]}',
            "ctxs[0].score",
            "not a finite number",
        ),
        (
            "dpr",
            '{"question": "q", "answers": ["a"], "ctxs": [{"text": "t", "score": ' + "9" * 400 + "}]}",
            "ctxs[0].score",
            "not a number: 9999",
        ),  # float(int) was OverflowError
        (
            "dpr",
            '{"question": "q\\ud800", "answers": ["a"], "ctxs": [{"text": "t"}]}',
            "question",
            "unpaired UTF-16 surrogate",
        ),  # was UnicodeEncodeError when the converter wrote it
        (
            "dpr",
            '{"question": "q", "answers": ["a"], "ctxs": [{"text": "t", "title": "\\udfff"}]}',
            "ctxs[0].title",
            "unpaired UTF-16 surrogate",
        ),
        (
            "ambignq",
            '[{"id": "a", "question": "q", "annotations": [{"type": "singleAnswer", "answer": ["x"], '
            '"qaPairs": 3}]}]',
            None,
            None,
        ),  # was TypeError: object of type 'int' has no len()
        (
            "musique",
            '{"id": "m", "question": "q", "answer": "a", "paragraphs": [{"idx": {"a": 1}, ' '"paragraph_text": "t"}]}',
            "paragraphs[0].idx",
            "must be a string or integer",
        ),
        (
            "hotpotqa_ircot",
            '{"question_id": "i", "question_text": "q", "answers_objects": [{"spans": ["a", 3]}], '
            '"contexts": [{"title": "T", "paragraph_text": "t"}]}',
            "answers_objects[0].spans[1]",
            "expected a string",
        ),
        ("triviaqa_dpr", "q\t" + "[" * 5000, "answers", "not a Python list literal"),  # was RecursionError
        ("triviaqa_dpr", "q\t{[]: 1}", "answers", "not a Python list literal"),  # was TypeError
        ("triviaqa_dpr", "q\t['" + "a" * 2000 + "']", None, "unreadable TSV row"),  # was csv.Error (limit below)
        (
            "dpr",
            '{"question": "q", "answers": [[' + ", ".join(["1"] * 5000) + "]]}",
            "answers[0]",
            "answer is not a string: <list of 5000 items>",
        ),  # messages stay short whatever the value
    ],
)
def test_fuzz_regressions(tmp_path, fmt, line, field, fragment):
  path = tmp_path / "bad.data"
  path.write_text(line + "\n", encoding="utf-8", errors="surrogatepass")
  # bm25 raises the process-wide csv limit; a field past it is the case
  limit = csv.field_size_limit(1000 if "TSV" in (fragment or "") else csv.field_size_limit())
  if fmt == "ambignq":
    (ex,), _ = read_examples(path, format=fmt)  # a stray qaPairs on a singleAnswer is ignored
    assert ex.meta == {"n_interpretations": 1}
    return
  try:
    with pytest.raises(DataError) as e:
      read_examples(path, format=fmt, require_candidates=False)
  finally:
    csv.field_size_limit(limit)
  _one_line_error(e.value, path)
  assert e.value.field == field and fragment in str(e.value), str(e.value)


def test_corrupt_gzip_is_a_data_error(tmp_path):
  rows = "".join(json.dumps({"question": f"q{i * 7919 % 100_003}", "answer": ["a"]}) + "\n" for i in range(2000))
  blob = gzip.compress(rows.encode(), mtime=0)
  path = tmp_path / "q.jsonl.gz"
  path.write_bytes(blob[: len(blob) // 2])  # truncated: was EOFError out of the reader
  with pytest.raises(DataError, match=r"q.jsonl.gz: line \d+: record: corrupt or truncated gzip"):
    read_examples(path, format="nq_open", skip_invalid=True)
  path.write_bytes(blob[:40] + bytes(b ^ 0xFF for b in blob[40:80]) + blob[80:])  # was zlib.error
  with pytest.raises(DataError, match="corrupt or truncated gzip"):
    read_examples(path, format="nq_open", skip_invalid=True)
  corpus, questions = tmp_path / "c.tsv.gz", tmp_path / "q.jsonl"
  blob = gzip.compress("".join(f"p{i}\tapple {i * 7919 % 100_003}\tA\n" for i in range(5000)).encode(), mtime=0)
  corpus.write_bytes(blob[: len(blob) // 2])
  questions.write_text("".join(rows.splitlines(keepends=True)[:20]))
  code, stderr = _cli(
      bm25.main,
      [
          f"--corpus={corpus}",
          f"--questions={questions}",
          "--questions_format=nq_open",
          f"--out={tmp_path / 'o.jsonl'}",
          "--skip_invalid",
      ],
  )
  _clean_failure(code, stderr, corpus)


def test_duplicate_passage_ids_with_different_texts(tmp_path):
  # the reader cache keys passages by id: two texts under one id would share cached answers
  row = {
      "id": "q",
      "question": "q?",
      "answers": ["a"],
      "ctxs": [{"id": "p1", "text": "one"}, {"id": "p2", "text": "x"}, {"id": "p1", "text": "two"}],
  }
  path = tmp_path / "d.jsonl"
  path.write_text(json.dumps(row) + "\n")
  with pytest.raises(DataError, match=r"line 1: field 'ctxs\[2\]': passage id 'p1' is also ctxs\[0\]"):
    read_examples(path, format="dpr")
  row["ctxs"][2]["text"] = "one"  # an exact repeat is harmless
  path.write_text(json.dumps(row) + "\n")
  (ex,), _ = read_examples(path, format="dpr")
  assert [c.pid for c in ex.candidates] == ["p1", "p2", "p1"]
