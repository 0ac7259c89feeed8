"""Dataset formats: the FORMATS registry and one adapter per public QA format, record -> Example.

An adapter `parse(record, r) -> Example` checks every field it reads through `r` (fields.Record),
so a bad record raises DataError naming file, line (or record for JSON documents) and field.
has_answer is always recomputed with text.contains_answer (SQuAD-normalised, token-boundary
containment), whatever the file says, so that every format labels passages the same way. How a
file becomes records (gzip, JSON Lines or one JSON list, TSV) is data/records.py; reading a whole
file into validated Examples is data/files.py.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from typing import Any, Callable, Iterator

from rrpo_jax.data.errors import short
from rrpo_jax.data.example import LABELLER, Candidate, Example, candidate
from rrpo_jax.data.fields import Record
from rrpo_jax.data.records import json_records, tsv_records
from rrpo_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Format:
  """parse(record, Record) -> Example; candidates: whether its records carry candidate passages;
  records(path) -> (unit, iterator of (line or record number, record or DataError)); field: the
  record field holding the candidate list (named in errors about a candidate)."""

  parse: Callable[[Any, Record], Example]
  candidates: bool
  records: Callable[[str], tuple[str, Iterator[tuple[int, Any]]]] = json_records
  field: str = "ctxs"


# data.format / --format names -> Format. A new format is one `@register_format` adapter below
# plus a test; the converter CLI, read_examples and config validation read this registry.
FORMATS: Registry[Format] = Registry("format")


def register_format(name: str, *, candidates: bool, records=json_records, field: str = "ctxs"):
  """Decorator: registers parse(record, Record) -> Example as the format `name`."""

  def add(parse):
    FORMATS.register(name, Format(parse, candidates, records, field))
    return parse

  return add


# ---------------------------------------------------------------------------------------------
# Adapters: (record object, Record) -> Example


@register_format("dpr", candidates=True, field="ctxs")
def parse_dpr(obj: Any, r: Record) -> Example:
  """DPR / FiD retrieval results, JSON list or JSON lines; e.g. a line of DPR's `dense_retriever.py`
  output: {"question": "who sings ...", "answers": ["..."], "ctxs": [{"id": "11828866",
  "title": "...", "text": "...", "score": "80.5", "has_answer": true}]}
  (github.com/facebookresearch/DPR, README "Retriever inference"). Also reads this package's own
  output (adds "id", "is_supporting", "meta", and "has_answer_by" when its has_answer labels come
  from text.contains_answer: those are kept, all others recomputed). A record without "ctxs" is
  a question only.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id", "qid", "question_id", "_id")
  question = r.string(r.get(obj, "question"), "question")
  answers = r.answers(r.get(obj, "answers"), "answers")
  candidates = []
  trusted = obj.get("has_answer_by") == LABELLER
  if "ctxs" in obj:
    for j, ctx in enumerate(r.items(obj["ctxs"], "ctxs")):
      f = f"ctxs[{j}]"
      ctx = r.obj(ctx, f)
      text = r.string(r.get(ctx, "text", f"{f}.text"), f"{f}.text", empty=True)
      title = r.string(ctx.get("title", ""), f"{f}.title", empty=True)
      pid = ctx.get("id", ctx.get("pid", f"{qid}#{j}"))
      if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        r.fail(f"{f}.id", f"passage id must be a string or integer, got {short(pid)}")
      score = ctx.get("score")
      if score is not None:
        try:
          score = float(score)
        except (TypeError, ValueError, OverflowError):
          r.fail(f"{f}.score", f"not a number: {short(score)}")
        if not math.isfinite(score):
          r.fail(f"{f}.score", f"not a finite number: {score}")
      sup = ctx.get("is_supporting")
      if sup is not None and not isinstance(sup, bool):
        r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
      has = ctx.get("has_answer")
      if trusted and isinstance(has, bool):
        candidates.append(Candidate(str(pid), title, text, score, has, sup))
      else:
        candidates.append(candidate(pid, title, text, answers, score=score, is_supporting=sup))
  meta = obj.get("meta", {})
  if not isinstance(meta, dict):
    r.fail("meta", "expected a JSON object")
  return Example(qid, question, answers, candidates, dict(meta))


@register_format("hotpotqa", candidates=True, field="context")
def parse_hotpotqa(obj: Any, r: Record) -> Example:
  """HotpotQA original JSON (a list), distractor or fullwiki: {"_id", "question", "answer",
  "supporting_facts": [[title, sent_id]], "context": [[title, [sentences]]], "type", "level"}
  (hotpotqa.github.io, hotpot_dev_distractor_v1.json). A paragraph is the concatenation of its
  sentences; is_supporting = its title is in supporting_facts.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "_id", "id")
  question = r.string(r.get(obj, "question"), "question")
  answer = r.string(r.get(obj, "answer"), "answer")
  answers = r.answers([answer], "answer")
  facts = r.get(obj, "supporting_facts")
  if not isinstance(facts, list) or not all(isinstance(f, list) and f and isinstance(f[0], str) for f in facts):
    r.fail("supporting_facts", "expected a list of [title, sentence index]")
  gold = {f[0] for f in facts}
  candidates = []
  for j, para in enumerate(r.items(r.get(obj, "context"), "context")):
    f = f"context[{j}]"
    if not (isinstance(para, list) and len(para) == 2 and isinstance(para[1], list)):
      r.fail(f, "expected [title, [sentences]]")
    title = r.string(para[0], f"{f}[0]")
    for i, s in enumerate(para[1]):
      r.string(s, f"{f}[1][{i}]", empty=True)
    candidates.append(candidate(title, title, "".join(para[1]).strip(), answers, is_supporting=title in gold))
  meta = {k: obj[k] for k in ("type", "level") if k in obj}
  return Example(qid, question, answers, candidates, meta)


@register_format("hotpotqa_ircot", candidates=True, field="contexts")
def parse_hotpotqa_ircot(obj: Any, r: Record) -> Example:
  """IRCoT processed JSON lines (github.com/StonyBrookNLP/ircot, processed_data/hotpotqa/*.jsonl):
  {"question_id", "question_text", "answers_objects": [{"number", "date", "spans": [str]}],
  "contexts": [{"id", "title", "paragraph_text", "is_supporting"}]}. Gold answers = all spans
  (and numbers) of all answer objects.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "question_id")
  question = r.string(r.get(obj, "question_text"), "question_text")
  objects = r.get(obj, "answers_objects")
  if not isinstance(objects, list):
    r.fail("answers_objects", "expected a list")
  raw = []
  for i, a in enumerate(objects):
    a = r.obj(a, f"answers_objects[{i}]")
    spans = a.get("spans", [])
    if not isinstance(spans, list):
      r.fail(f"answers_objects[{i}].spans", "expected a list of strings")
    for k, span in enumerate(spans):
      r.string(span, f"answers_objects[{i}].spans[{k}]", empty=True)
    raw.extend(spans)
    number = a.get("number")
    if isinstance(number, bool) or not isinstance(number, (str, int, float, type(None))):
      r.fail(f"answers_objects[{i}].number", f"expected a number or string, got {short(number)}")
    if number not in (None, ""):
      raw.append(str(number))
  answers = r.answers(raw, "answers_objects.spans")
  candidates = []
  for j, ctx in enumerate(r.items(r.get(obj, "contexts"), "contexts")):
    f = f"contexts[{j}]"
    ctx = r.obj(ctx, f)
    title = r.string(r.get(ctx, "title", f"{f}.title"), f"{f}.title", empty=True)
    text = r.string(r.get(ctx, "paragraph_text", f"{f}.paragraph_text"), f"{f}.paragraph_text", empty=True)
    sup = ctx.get("is_supporting")
    if sup is not None and not isinstance(sup, bool):
      r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
    candidates.append(candidate(title or f"{qid}#{j}", title, text, answers, is_supporting=sup))
  return Example(qid, question, answers, candidates, {})


@register_format("musique", candidates=True, field="paragraphs")
def parse_musique(obj: Any, r: Record) -> Example:
  """MuSiQue JSON lines (github.com/StonyBrookNLP/musique, musique_ans_v1.0_dev.jsonl): {"id",
  "question", "answer", "answer_aliases": [str], "answerable", "paragraphs": [{"idx", "title",
  "paragraph_text", "is_supporting"}]}. Gold answers = answer + aliases.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id")
  question = r.string(r.get(obj, "question"), "question")
  answer = r.string(r.get(obj, "answer"), "answer", empty=True)
  aliases = obj.get("answer_aliases", [])
  if not isinstance(aliases, list):
    r.fail("answer_aliases", "expected a list of strings")
  for i, a in enumerate(aliases):
    if not isinstance(a, str):
      r.fail(f"answer_aliases[{i}]", f"answer is not a string: {short(a)}")
  answers = r.answers([answer, *aliases], "answer")
  candidates = []
  for j, p in enumerate(r.items(r.get(obj, "paragraphs"), "paragraphs")):
    f = f"paragraphs[{j}]"
    p = r.obj(p, f)
    title = r.string(p.get("title", ""), f"{f}.title", empty=True)
    text = r.string(r.get(p, "paragraph_text", f"{f}.paragraph_text"), f"{f}.paragraph_text", empty=True)
    sup = p.get("is_supporting")
    if sup is not None and not isinstance(sup, bool):
      r.fail(f"{f}.is_supporting", f"expected true/false, got {short(sup)}")
    idx = p.get("idx", j)
    if isinstance(idx, bool) or not isinstance(idx, (str, int)):
      r.fail(f"{f}.idx", f"paragraph index must be a string or integer, got {short(idx)}")
    candidates.append(candidate(f"{qid}#{idx}", title, text, answers, is_supporting=sup))
  meta = {"answerable": obj["answerable"]} if "answerable" in obj else {}
  return Example(qid, question, answers, candidates, meta)


@register_format("nq_open", candidates=False)
def parse_nq_open(obj: Any, r: Record) -> Example:
  """NQ-open JSON lines (github.com/google-research-datasets/natural-questions, nq_open/
  NQ-open.dev.jsonl): {"question": "who ...", "answer": ["..."]}; an optional "id" is kept (else
  the line number), other extra fields go to meta. Questions only: candidates come from a retriever
  (python -m rrpo_jax.data.bm25).
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id", "qid")
  question = r.string(r.get(obj, "question"), "question")
  key = "answer" if "answer" in obj or "answers" not in obj else "answers"
  meta = {k: v for k, v in obj.items() if k not in ("question", key, "id", "qid")}
  return Example(qid, question, r.answers(r.get(obj, key), key), [], meta)


@register_format("ambignq", candidates=False)
def parse_ambignq(obj: Any, r: Record) -> Example:
  """AmbigNQ light JSON (a list; github.com/shmsw25/AmbigQA, dev_light.json): {"id", "question",
  "annotations": [{"type": "singleAnswer", "answer": [str]} | {"type": "multipleQAs",
  "qaPairs": [{"question", "answer": [str]}]}]}. Gold answers = union over all annotations.
  """
  obj = r.obj(obj, None)
  qid = r.qid(obj, "id")
  question = r.string(r.get(obj, "question"), "question")
  annotations = r.get(obj, "annotations")
  if not isinstance(annotations, list) or not annotations:
    r.fail("annotations", "expected a non-empty list")
  raw = []
  for i, ann in enumerate(annotations):
    f = f"annotations[{i}]"
    ann = r.obj(ann, f)
    kind = r.get(ann, "type", f"{f}.type")
    if kind == "singleAnswer":
      raw.extend(r.answers(r.get(ann, "answer", f"{f}.answer"), f"{f}.answer"))
    elif kind == "multipleQAs":
      pairs = r.get(ann, "qaPairs", f"{f}.qaPairs")
      if not isinstance(pairs, list):
        r.fail(f"{f}.qaPairs", "expected a list")
      for k, pair in enumerate(pairs):
        g = f"{f}.qaPairs[{k}]"
        pair = r.obj(pair, g)
        raw.extend(r.answers(r.get(pair, "answer", f"{g}.answer"), f"{g}.answer"))
    else:
      r.fail(f"{f}.type", f"expected singleAnswer or multipleQAs, got {short(kind)}")
  meta = {"n_interpretations": max(len(a["qaPairs"]) if a["type"] == "multipleQAs" else 1 for a in annotations)}
  return Example(qid, question, r.answers(raw, "annotations"), [], meta)


@register_format("triviaqa_dpr", candidates=False, records=tsv_records)
def parse_triviaqa_dpr(row: Any, r: Record) -> Example:
  """TriviaQA in DPR's TSV (facebookresearch/DPR data `trivia-dev.qa.csv`, also Pyserini's
  topics.dpr.trivia.dev.txt): question <TAB> Python-literal list of answer aliases, e.g.
  `Ezzard Charles was a world champion in which sport?\t['Boxing', 'Prize fighting']`.
  """
  if len(row) != 2:
    r.fail("columns", f"expected 2 tab-separated columns (question, answers), got {len(row)}")
  question = r.string(row[0], "question")
  try:
    answers = ast.literal_eval(row[1])
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):  # all literal_eval raises
    r.fail("answers", f"not a Python list literal: {short(row[1])}")
  return Example(str(r.line), question, r.answers(answers, "answers"), [], {})
