"""The transformers reader: batched greedy generation with a tiny random causal LM (the tiny_llama
fixture: tests/conftest.py, tests/tiny.py)."""

from rrpo_jax.reader import Passage, PromptTemplate, Request, make_reader
from rrpo_jax.reader.hf import HFReader
import tiny

# Ends on the question, so that different prompts end differently and answer differently.
TEMPLATE = PromptTemplate(layout="{instruction} {passages} question: {question}", instruction="answer briefly.")


def _requests():
  p = [Passage(f"p{i}", f"title {i}", f"passage number {i} " * (i + 1)) for i in range(3)]
  return [
      Request("q1", "who?", tuple(p[:1])),
      Request("q1", "who?", tuple(p[:3])),
      Request("q2", "where is it?", tuple(p[1:2])),
  ]


def test_batched_equals_one_at_a_time(tiny_llama):
  model, tok = tiny_llama
  batched = HFReader(model=model, tokenizer=tok, template=TEMPLATE, max_tokens=5, batch_size=3, device="cpu")
  single = HFReader(model=model, tokenizer=tok, template=TEMPLATE, max_tokens=5, batch_size=1, device="cpu")
  assert not batched.chat  # this tokenizer has no chat template
  a, b = batched.answer(_requests()), single.answer(_requests())
  assert [r.raw for r in a] == [r.raw for r in b]  # left padding does not change greedy answers
  assert len({r.raw for r in a}) == 3  # and the answers differ, so the comparison means something
  assert [r.prompt_tokens for r in a] == [r.prompt_tokens for r in b]
  assert a[1].prompt_tokens > a[0].prompt_tokens
  for r in a:
    assert r.ok and r.completion_tokens <= 5 and "\n" not in r.text
  assert [r.raw for r in batched.answer(_requests())] == [r.raw for r in a]  # deterministic


def test_chat_template_is_used_when_present(tiny_llama):
  model, tok = tiny_llama
  tok = tiny.minilm_tokenizer()
  tok.chat_template = tiny.CHAT_TEMPLATE
  reader = HFReader(model=model, tokenizer=tok, max_tokens=3, device="cpu")
  assert reader.chat and '"chat": true' in reader.identity
  text = reader._text(_requests()[0])  # pylint: disable=protected-access
  assert text.startswith("<user> Answer the question") and text.endswith("Answer:\n<assistant>")
  assert all(r.ok for r in reader.answer(_requests()))


def test_make_reader_from_a_saved_checkpoint(tiny_llama, tmp_path):
  model, tok = tiny_llama
  model.save_pretrained(tmp_path)
  tok.save_pretrained(tmp_path)
  reader = make_reader({"backend": "hf", "model": str(tmp_path), "max_tokens": 2, "device": "cpu"})
  out = reader.answer(_requests()[:1])
  assert out[0].ok and out[0].completion_tokens <= 2 and str(tmp_path) in reader.identity
