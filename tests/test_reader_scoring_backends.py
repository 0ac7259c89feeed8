"""Teacher-forced scoring (Reader.score) in the hf and openai backends, against hand computations:
the transformers model's own logits, and an in-process llama_cpp.Llama on the tokens a real
`python -m llama_cpp.server` (127.0.0.1) is given; servers that cannot score fail with one
ReaderError; faults from tests/fault_proxy.py are retried as the answer path retries them."""

import http.server
import json
import math
import os
import threading

import numpy as np
import pytest
import torch

from fault_proxy import FaultProxy
from rrpo_jax.reader import Passage, PromptTemplate, ReaderError, ReaderUnavailableError, Request, make_reader
from rrpo_jax.reader.hf import HFReader
from rrpo_jax.reader.server import LlamaServer
import tiny

PASSAGES = [
    Passage("p1", "Eiffel Tower", "The Eiffel Tower in Paris was completed in 1889."),
    Passage("p2", "Louvre", "The Louvre is an art museum in Paris."),
]
REQUESTS = [
    Request("q1", "When was the Eiffel Tower completed?", (PASSAGES[0],)),
    Request("q1", "When was the Eiffel Tower completed?", (PASSAGES[1], PASSAGES[0])),
    Request("q2", "What is the Louvre?", (PASSAGES[1],)),
]
ANSWERS = ["1889", "in 1889", "an art museum"]


# --- hf -------------------------------------------------------------------------------------------
# The model: the tiny_llama fixture (tests/conftest.py), MiniLM's WordPiece tokenizer and a random Llama.


def _by_hand(model, prompt_ids, cont_ids):
  """log p(c_j | prompt, c_<j) from one unpadded forward: the logits at position len(prompt) - 1 + j."""
  with torch.no_grad():
    logits = model(torch.tensor([prompt_ids + cont_ids])).logits[0].double()
  logp = torch.log_softmax(logits, dim=-1)
  return [logp[len(prompt_ids) - 1 + j, c].item() for j, c in enumerate(cont_ids)]


def test_hf_scores_are_the_models_log_probabilities(tiny_llama):
  model, tok = tiny_llama
  template = PromptTemplate()
  batched = HFReader(model=model, tokenizer=tok, template=template, batch_size=3, device="cpu")
  single = HFReader(model=model, tokenizer=tok, template=template, batch_size=1, device="cpu")
  assert not batched.chat
  out = batched.score(REQUESTS, ANSWERS)
  for one, many in zip(single.score(REQUESTS, ANSWERS), out):  # left padding changes nothing
    np.testing.assert_allclose(one.logprobs, many.logprobs, atol=1e-5)
  for req, answer, got in zip(REQUESTS, ANSWERS, out):
    text = template.render(req.question, req.passages)
    assert text.endswith("Answer:")  # no whitespace at the end: the continuation is " " + answer
    prompt = tok(text, split_special_tokens=True)["input_ids"]  # as the answer path: [CLS] ... [SEP]
    cont = tok(" " + answer, add_special_tokens=False)["input_ids"]
    assert got.ok and got.prompt_tokens == len(prompt) and len(got.logprobs) == len(cont) > 0
    np.testing.assert_allclose(got.logprobs, _by_hand(model, prompt, cont), atol=1e-5)
    assert all(v < 0 for v in got.logprobs) and got.mean_logprob == pytest.approx(sum(got.logprobs) / len(cont))


def test_hf_chat_scores_after_the_generation_prompt(tiny_llama):
  model, _ = tiny_llama
  tok = tiny.minilm_tokenizer()
  tok.chat_template = tiny.CHAT_TEMPLATE
  reader = HFReader(model=model, tokenizer=tok, device="cpu")
  assert reader.chat
  special = Request("q3", "Who?", (Passage("p", "t", "x [SEP] y"),))
  out = reader.score([REQUESTS[0], special, special], ["1889", "a [SEP] b", ""])
  prompt = reader.encode(REQUESTS[0])
  assert reader._text(REQUESTS[0]).endswith("<assistant>")  # pylint: disable=protected-access
  cont = tok(" 1889", add_special_tokens=False)["input_ids"]  # "<assistant>" ends without whitespace
  np.testing.assert_allclose(out[0].logprobs, _by_hand(model, prompt, cont), atol=1e-5)
  # Special-token strings in the continuation are text: "[SEP]" is 5 plain tokens, not the separator.
  plain = tok(" a [SEP] b", add_special_tokens=False, split_special_tokens=True)["input_ids"]
  assert tok.sep_token_id not in plain and len(plain) == 5  # a [ sep ] b
  np.testing.assert_allclose(out[1].logprobs, _by_hand(model, reader.encode(special), plain), atol=1e-5)
  assert not out[2].ok and out[2].error == "the continuation has no tokens" and out[2].mean_logprob == -math.inf


# --- openai: a real llama-cpp-python server -------------------------------------------------------

ADD_BOS = "tokenizer.ggml.add_bos_token"
# Short prompts: llama-cpp-python's server spends ~0.15 s per echoed prompt token (it sorts the whole
# vocabulary for each in Python).
SHORT = {"layout": "{passages}\nQ: {question}\nA:", "passage": "{text}"}
SHORT_TEMPLATE = PromptTemplate(layout=SHORT["layout"], passage=SHORT["passage"])
SHORT_REQUESTS = [
    Request("q1", "When?", (Passage("p1", "", "Built in 1889."),)),
    Request("q2", "What?", (Passage("p2", "", "An art museum."),)),
]
SHORT_ANSWERS = ["1889", "a museum"]


def _server(tmp_path_factory, **env):
  """SmolLM2 behind `python -m llama_cpp.server`; env: its settings as environment variables."""
  with pytest.MonkeyPatch.context() as mp:
    for name, value in env.items():
      mp.setenv(name, value)
    srv = LlamaServer(n_ctx=512, n_threads=1, log_path=str(tmp_path_factory.mktemp("srv") / "server.log"))
    return srv.start()


@pytest.fixture(scope="module")
def bos_server(tmp_path_factory):
  """The server with logits_all (its default) and SmolLM2 told to add a BOS token: llama-cpp-python's
  echo aligns prompt log-probabilities correctly only then (see rrpo_jax/reader/openai.py)."""
  srv = _server(tmp_path_factory, KV_OVERRIDES=json.dumps([f"{ADD_BOS}=bool:true"]))
  yield srv
  srv.stop()


@pytest.fixture(scope="module")
def expected(bos_server):
  """log p of each continuation token, by hand: an in-process Llama(logits_all=True) evaluates the
  tokens the server is given (BOS + the prompt + the continuation, special tokens parsed)."""
  import llama_cpp  # pylint: disable=import-outside-toplevel

  llm = llama_cpp.Llama(
      model_path=bos_server.path, n_ctx=512, n_threads=1, logits_all=True, verbose=False, kv_overrides={ADD_BOS: True}
  )
  out = []
  for req, answer in zip(SHORT_REQUESTS, SHORT_ANSWERS):
    prompt = SHORT_TEMPLATE.render(req.question, req.passages)
    tokens = llm.tokenize((prompt + " " + answer).encode(), add_bos=True, special=True)
    n = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
    assert tokens[0] == llm.token_bos() and n < len(tokens)
    llm.reset()
    llm.eval(tokens)
    scores = np.asarray(llm.scores[: len(tokens)], np.float64)
    logp = scores - np.logaddexp.reduce(scores, axis=-1, keepdims=True)
    out.append(([logp[t - 1, tokens[t]] for t in range(n, len(tokens))], n))
  llm.close()
  return out


def _reader(base_url, **kw):
  config = {
      "backend": "openai",
      "base_url": base_url,
      "endpoint": "completions",
      "concurrency": 2,
      "timeout_s": 30,
      "max_retries": 4,
      "backoff_s": 0.05,
      "max_backoff_s": 0.5,
      **SHORT,
      **kw,
  }
  return make_reader(config)


def _check(scored, expected):
  for got, (want, n) in zip(scored, expected, strict=True):
    assert got.ok and got.prompt_tokens == n, got
    np.testing.assert_allclose(got.logprobs, want, atol=1e-3)


@pytest.mark.slow
def test_openai_scores_match_llama_cpp_in_process(bos_server, expected):
  reader = _reader(bos_server.base_url)
  _check(reader.score(SHORT_REQUESTS, SHORT_ANSWERS), expected)
  assert len(expected[0][0]) == 5  # SmolLM2 splits digits: " ", "1", "8", "8", "9"
  reader.close()


@pytest.mark.slow
def test_openai_through_the_fault_proxy(bos_server, expected):
  """Transient faults are retried to the same scores; a reply that is not JSON fails its pair only;
  past the retry budget ReaderUnavailableError."""
  with FaultProxy(f"http://{bos_server.host}:{bos_server.port}") as proxy:
    clean = _reader(proxy.base_url, concurrency=1).score(SHORT_REQUESTS[::-1], SHORT_ANSWERS[::-1])
    _check(clean, expected[::-1])  # in the other order: the server's prefix reuse changes nothing
    # The client's timeout from the clean pass's speed (a loaded machine answers slowly); a hang outlasts it.
    timeout = max(3.0, 4 * max(s.latency_s for s in clean))
    proxy.hang_s = timeout + 1
    proxy.script = ["500", "hang", "reset", "429", "truncated"]
    reader = _reader(proxy.base_url, max_retries=8, timeout_s=timeout, concurrency=1)
    _check(reader.score(SHORT_REQUESTS, SHORT_ANSWERS), expected)
    assert not proxy.script and dict(proxy.injected) == {"500": 1, "hang": 1, "reset": 1, "429": 1, "truncated": 1}
    # A 200 whose body is not JSON: that pair fails (no retry), carrying no signal; the other is scored.
    proxy.script = ["cut_json"]
    out = reader.score(SHORT_REQUESTS, SHORT_ANSWERS)
    assert not out[0].ok and out[0].error.startswith("malformed reply") and out[0].logprobs == (), out
    _check(out[1:], expected[1:])
    proxy.script = ["500"] * 3
    with pytest.raises(ReaderUnavailableError, match="failed 3 attempts; last: HTTP 500"):
      _reader(proxy.base_url, max_retries=2).score(SHORT_REQUESTS[:1], SHORT_ANSWERS[:1])
    assert not proxy.script


@pytest.mark.slow
def test_llama_cpp_servers_that_cannot_score_fail_once_and_clearly(tmp_path_factory):
  # logits_all off: HTTP 500 "logprobs is not supported ...": not retried, one ReaderError.
  srv = _server(tmp_path_factory, LOGITS_ALL="false")
  try:
    reader = _reader(srv.base_url, concurrency=1)
    statuses = []
    reader._client.event_hooks["response"].append(lambda r: statuses.append(r.status_code))  # pylint: disable=protected-access
    with pytest.raises(ReaderError, match="logits_all") as info:
      reader.score(SHORT_REQUESTS, SHORT_ANSWERS)
    assert statuses == [500] and srv.base_url in str(info.value) and "\n" not in str(info.value)
    assert reader.answer(SHORT_REQUESTS[:1])[0].ok  # answering still works
  finally:
    srv.stop()
  # SmolLM2 as it is (no BOS): the server's echo shifts the log-probabilities by one token.
  srv = _server(tmp_path_factory)
  try:
    with pytest.raises(ReaderError, match="leave out the generated token") as info:
      _reader(srv.base_url).score(SHORT_REQUESTS[:1], SHORT_ANSWERS[:1])
    assert srv.base_url in str(info.value)
  finally:
    srv.stop()


# --- openai: scripted servers in the shape of vLLM and llama.cpp's llama-server -------------------


class _Scripted(http.server.BaseHTTPRequestHandler):
  """Answers each POST with server.reply(path, body) -> (status, JSON); records the bodies."""

  def do_POST(self):  # pylint: disable=invalid-name
    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
    self.server.seen.append((self.path, body))
    status, data = self.server.reply(self.path, body)
    raw = json.dumps(data).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(raw)))
    self.end_headers()
    self.wfile.write(raw)

  def log_message(self, *args):
    pass


@pytest.fixture
def scripted():
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
  srv.seen = []
  threading.Thread(target=srv.serve_forever, daemon=True).start()
  srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
  yield srv
  srv.shutdown()
  srv.server_close()


def _words(text):
  """A toy tokenizer: words with their leading space."""
  out, word = [], ""
  for ch in text:
    if ch.isspace() and word.strip():
      out.append(word)
      word = ""
    word += ch
  return out + ([word] if word else [])


def _vllm_prompt_logprobs(text):
  """vLLM's prompt_logprobs: None for the first token, then {token_id: {logprob, rank, decoded_token}};
  token t's log-probability is -t/10 (so each is recognisable)."""
  return [None] + [
      {str(100 + t): {"logprob": -t / 10, "rank": 1, "decoded_token": w}} for t, w in enumerate(_words(text)) if t
  ]


def test_vllm_prompt_logprobs_when_echo_is_ignored(scripted):
  def reply(path, body):
    assert path == "/v1/completions"
    if body.get("echo"):  # a server that ignores echo: no prompt in the text, no prompt logprobs
      return 200, {"choices": [{"text": "x", "logprobs": None}], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    assert body["prompt_logprobs"] == 0 and body["max_tokens"] == 1
    return 200, {"choices": [{"text": "x", "prompt_logprobs": _vllm_prompt_logprobs(body["prompt"])}]}

  scripted.reply = reply
  reader = _reader(scripted.base_url, concurrency=1)
  out = reader.score(REQUESTS, ANSWERS)
  prompt = SHORT_TEMPLATE.render(REQUESTS[0].question, REQUESTS[0].passages)
  n = len(_words(prompt))
  assert out[0].logprobs == (-n / 10,) and out[0].prompt_tokens == n  # " 1889": one toy token
  assert out[2].logprobs == pytest.approx(
      [-(len(_words(SHORT_TEMPLATE.render(REQUESTS[2].question, REQUESTS[2].passages))) + i) / 10 for i in range(3)]
  )
  assert [bool(b.get("echo")) for _, b in scripted.seen] == [True, False, False, False]  # the form is kept
  assert scripted.seen[1][1]["prompt"] == prompt + " 1889"


def test_vllm_chat_extension(scripted):
  def reply(path, body):
    assert path == "/v1/chat/completions"
    assert body["continue_final_message"] and not body["add_generation_prompt"] and body["prompt_logprobs"] == 0
    text = "<|im_start|>user\n" + body["messages"][0]["content"] + "<|im_end|>\n<|im_start|>assistant\n"
    text += body["messages"][-1]["content"]
    return 200, {"choices": [{"message": {"content": "x"}}], "prompt_logprobs": _vllm_prompt_logprobs(text)}

  scripted.reply = reply
  out = _reader(scripted.base_url, endpoint="chat").score(REQUESTS[:1], ["in 1889"])
  assert out[0].ok and len(out[0].logprobs) == 2  # "in", " 1889"
  assert scripted.seen[0][1]["messages"][-1] == {"role": "assistant", "content": "in 1889"}  # as given


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_a_server_without_prompt_logprobs_is_one_clear_error(scripted, endpoint):
  """llama.cpp's llama-server: no echo, log-probabilities of the generated token only."""
  generated = {"content": [{"token": "x", "logprob": -0.1}]}
  scripted.reply = lambda path, body: (
      200,
      {"choices": [{"text": "x", "message": {"content": "x"}, "logprobs": generated}], "usage": {"prompt_tokens": 9}},
  )
  with pytest.raises(ReaderError) as info:
    _reader(scripted.base_url, endpoint=endpoint, concurrency=2).score(REQUESTS, ANSWERS)
  message = str(info.value)
  assert scripted.base_url in message and "cannot score" in message and "\n" not in message
  assert ("endpoint=completions" in message) == (endpoint == "chat")
  assert len(scripted.seen) <= 2 * len(REQUESTS)  # not retried


def _echo(prompt):
  """vLLM's echo of `prompt` + one generated token "x": a BOS token first, whose text "<s>" the offsets
  count though the echoed text does not hold it; token t at log-probability -t/10 (None for the first)."""
  words = ["<s>"] + _words(prompt) + ["x"]
  offsets = [sum(len(w) for w in words[:i]) for i in range(len(words))]
  values = [None] + [-t / 10 for t in range(1, len(words))]
  return {"tokens": words, "token_logprobs": values, "text_offset": offsets}


def test_echo_offsets_counting_bos_and_a_4xx_that_fails_only_its_pair(scripted):
  def reply(path, body):
    assert path == "/v1/completions" and body["echo"] and body["logprobs"] == 0 and body["min_tokens"] == 1
    if "Louvre?" in body["prompt"]:
      return 400, {"error": "context too long"}
    return 200, {
        "choices": [{"text": body["prompt"] + "x", "logprobs": _echo(body["prompt"])}],
        "usage": {"completion_tokens": 1},
    }

  scripted.reply = reply
  out = _reader(scripted.base_url).score(REQUESTS, ANSWERS)
  assert [s.ok for s in out] == [True, True, False] and out[2].error.startswith("HTTP 400")
  n = [1 + len(_words(SHORT_TEMPLATE.render(r.question, r.passages))) for r in REQUESTS]  # BOS + the prompt
  assert out[0].logprobs == (-n[0] / 10,) and out[0].prompt_tokens == n[0]  # " 1889"
  assert out[1].logprobs == pytest.approx([-n[1] / 10, -(n[1] + 1) / 10])  # " in", " 1889"
  assert len(scripted.seen) == 3
