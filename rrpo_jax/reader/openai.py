"""Reader over any OpenAI-compatible server (vLLM, SGLang, llama.cpp servers, hosted APIs).

Teacher-forced scoring (`Reader.score`: log p of each continuation token after the answering
prompt) needs a server that returns log-probabilities of prompt tokens:
  endpoint="completions": the prompt is the rendered prompt + the continuation, sent with
    `echo: true, logprobs: 0, max_tokens: 1, min_tokens: 1` (the one generated token is ignored;
    max_tokens 0 is not portable: llama-cpp-python reads it as "up to n_ctx", vLLM rejects it).
    The continuation's tokens are the echoed tokens that overlap its characters, found by
    `text_offset` (by the token texts where it is missing). Servers:
    - `python -m llama_cpp.server` (llama-cpp-python): only for a model that adds a BOS token
      (Gemma 3: yes; SmolLM2: no) and with logits_all on (the server's default; with
      `--logits_all False` every scoring call fails with one ReaderError). For a model without
      BOS its echo pairs each prompt token with the log-probabilities of the position after it
      (llama-cpp-python 0.3.36, Llama._create_completion) and drops the generated token: the
      reader tells this from the missing generated token (min_tokens 1 keeps one from being EOS)
      and raises one ReaderError rather than score with wrong numbers. Each echoed request also
      sorts the whole vocabulary per prompt token in Python: slow on long prompts.
    - vLLM: yes (echo + logprobs computes prompt log-probabilities). Where echo is not honoured
      the request is made once more with vLLM's `prompt_logprobs: 0` instead (and that form is
      kept); the V1 engine skips its prefix cache for requests with prompt_logprobs, so each such
      prompt is computed in full.
    - llama.cpp's own `llama-server`: no (it does not echo the prompt and returns log-probabilities
      of generated tokens only): one ReaderError.
  endpoint="chat": the server renders the chat template, so the client cannot append the
    continuation to a prompt it never sees; it sends vLLM's extension instead: the messages plus an
    assistant message holding the continuation, `continue_final_message: true,
    add_generation_prompt: false, prompt_logprobs: 0, max_tokens: 1`, and takes the last prompt
    tokens that spell the continuation. The continuation goes in as given (the generation prompts of
    chat templates end with a newline). Only vLLM answers this; any other server gives one
    ReaderError that suggests reader.endpoint=completions (which also changes the answering prompt:
    no chat template).
  The continuation rule (as every backend): " " + text when the rendered prompt does not end in
  whitespace, else the text. Retries, backoff, concurrency and fatal statuses are the answer
  path's; an error reply that names log-probabilities (or echo, min_tokens, logits_all) is one
  ReaderError at once; a reply without usable log-probabilities for one pair is Scored(ok=False).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import Any, Callable, Sequence

import httpx

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import DEFAULTS, Reader, ReaderError, ReaderUnavailableError, Request, Response, Scored

_FATAL = (401, 403, 404)  # wrong key, model or URL: retrying cannot help
# Error replies that say the server cannot return log-probabilities (llama-cpp-python's server with
# logits_all off answers 500 "logprobs is not supported for models created with logits_all=False"):
# asked again they fail the same way.
_NO_LOGPROBS = ("logits_all", "logprobs", "echo", "min_tokens")


class _Unusable(Exception):
  """A reply that came back but cannot be used: a 4xx (failed) or a body that is not JSON (malformed)."""

  def __init__(self, error: str, latency: float, *, malformed: bool):
    super().__init__(error)
    self.error, self.latency, self.malformed = error, latency, malformed


class OpenAIReader(Reader):
  """Chat or completion endpoint, `concurrency` requests in flight, retries with backoff.

  Connection errors, timeouts, 429 and 5xx are retried up to `max_retries` times with delays
  backoff_s * 2**attempt (capped at max_backoff_s); then ReaderUnavailableError. 401/403/404 raise
  ReaderError at once. Other 4xx and replies without an answer come back as failed / malformed
  responses. The API key is read from the environment variable `api_key_env` and only ever sent
  in the Authorization header. Scoring: see the module docstring.
  """

  backend = "openai"

  def __init__(
      self,
      *,
      base_url: str,
      model: str = "default",
      endpoint: str = "chat",
      api_key_env: str | None = "OPENAI_API_KEY",
      template: prompts.PromptTemplate | None = None,
      max_tokens: int = DEFAULTS["max_tokens"],
      concurrency: int = 8,
      timeout_s: float = 60.0,
      max_retries: int = 5,
      backoff_s: float = 0.5,
      max_backoff_s: float = 8.0,
      stop: Sequence[str] | None = None,
      postprocess=prompts.postprocess,
  ):
    super().__init__(template=template or prompts.PromptTemplate(), max_tokens=max_tokens, postprocess=postprocess)
    if endpoint not in ("chat", "completions"):
      raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
    self.base_url = base_url.rstrip("/")
    self.model, self.endpoint = model, endpoint
    self.concurrency, self.timeout_s = max(1, int(concurrency)), float(timeout_s)
    self.max_retries, self.backoff_s, self.max_backoff_s = int(max_retries), float(backoff_s), float(max_backoff_s)
    self.stop = list(stop) if stop else None
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(api_key_env) if api_key_env else None
    if key:
      headers["Authorization"] = f"Bearer {key}"
    self._key = key or None  # only to redact it from server replies quoted in errors
    limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
    self._client = httpx.Client(headers=headers, timeout=self.timeout_s, limits=limits, trust_env=False)
    self._prompt_logprobs = False  # completions scoring: True once echo was ignored and prompt_logprobs answered

  def __repr__(self):
    return f"OpenAIReader(base_url={self.base_url!r}, model={self.model!r}, endpoint={self.endpoint!r})"

  def _settings(self) -> dict:
    return {"model": self.model, "endpoint": self.endpoint, "stop": self.stop}

  def _quote(self, reply: httpx.Response) -> str:
    """The start of a reply body for an error message, with the API key redacted (some servers echo it)."""
    text = reply.text[: 200 + len(self._key or "")]
    return (text.replace(self._key, "<redacted>") if self._key else text)[:200]

  def close(self) -> None:
    self._client.close()

  def _payload(self, request: Request) -> tuple[str, dict]:
    body = {"model": self.model, "temperature": 0.0, "top_p": 1.0, "n": 1, "max_tokens": self.max_tokens}
    if self.stop:
      body["stop"] = self.stop
    if self.endpoint == "chat":
      body["messages"] = self.template.messages(request.question, request.passages)
      return f"{self.base_url}/chat/completions", body
    body["prompt"] = self.template.render(request.question, request.passages)
    return f"{self.base_url}/completions", body

  def _parse(self, data, latency: float) -> Response:
    try:
      choice = data["choices"][0]
      raw = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
      if not isinstance(raw, str):
        raise TypeError(f"answer is {type(raw).__name__}")
    except (KeyError, IndexError, TypeError) as e:
      return Response(text="", latency_s=latency, malformed=True, error=f"malformed reply: {e!r}")
    usage = data.get("usage") or {}
    return Response(
        text="",
        raw=raw,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency,
    )

  def _post(self, url: str, body: dict, abort: threading.Event, *, scoring: bool = False) -> tuple[Any, float]:
    """(the reply's JSON, latency) of one POST, retried as the class docstring says.

    Raises _Unusable for a non-fatal 4xx or a body that is not JSON. scoring: an error reply that
    names log-probabilities (_NO_LOGPROBS) raises ReaderError at once: the server cannot score.
    """
    last = "no attempt"
    for attempt in range(self.max_retries + 1):
      if abort.is_set():
        raise ReaderUnavailableError("aborted: another request of this batch exhausted its retries")
      if attempt:
        time.sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
      start = time.perf_counter()
      try:
        reply = self._client.post(url, json=body)
      except httpx.TransportError as e:
        last = f"{type(e).__name__}: {e}"
        continue
      latency = time.perf_counter() - start
      if scoring and reply.status_code >= 400 and reply.status_code != 429:
        quote = self._quote(reply)
        if any(word in quote.lower() for word in _NO_LOGPROBS):
          raise self._cannot_score(f"it answered HTTP {reply.status_code}: {quote}")
      if reply.status_code == 429 or reply.status_code >= 500:
        last = f"HTTP {reply.status_code}: {self._quote(reply)}"
        continue
      if reply.status_code in _FATAL:
        raise ReaderError(
            f"{url} answered HTTP {reply.status_code} (check base_url, model and the API key "
            f"variable): {self._quote(reply)}"
        )
      if reply.status_code >= 400:
        raise _Unusable(f"HTTP {reply.status_code}: {self._quote(reply)}", latency, malformed=False)
      try:
        return reply.json(), latency
      except ValueError as e:
        raise _Unusable(f"malformed reply: {e}", latency, malformed=True) from None
    raise ReaderUnavailableError(f"reader at {self.base_url} failed {self.max_retries + 1} attempts; last: {last}")

  def _one(self, request: Request, abort: threading.Event) -> Response:
    url, body = self._payload(request)
    try:
      data, latency = self._post(url, body, abort)
    except _Unusable as e:
      if e.malformed:
        return Response(text="", latency_s=e.latency, malformed=True, error=e.error)
      return Response(text="", latency_s=e.latency, ok=False, error=e.error)
    return self._parse(data, latency)

  def _map(self, fn: Callable[[Any, threading.Event], Any], items: Sequence[Any]) -> list:
    """[fn(item, abort) for item in items], `concurrency` at a time; the first exception stops the batch."""
    abort = threading.Event()
    if self.concurrency == 1 or len(items) == 1:
      return [fn(item, abort) for item in items]
    pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="reader")
    try:
      futures = [pool.submit(fn, item, abort) for item in items]  # FIFO: prefixes stay adjacent
      concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
      for f in futures:
        if f.done() and (e := f.exception()) is not None:
          raise e
      return [f.result() for f in futures]
    except BaseException:
      abort.set()
      raise
    finally:
      pool.shutdown(wait=True, cancel_futures=True)

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    return self._map(self._one, requests)

  # Teacher-forced scoring (module docstring).

  def _score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    return self._map(lambda pair, abort: self._score_one(pair[0], pair[1], abort), list(zip(requests, continuations)))

  def _cannot_score(self, missing: str, hint: str = "") -> ReaderError:
    hint = hint or (
        "scoring needs prompt log-probabilities: vLLM, or python -m llama_cpp.server with logits_all "
        "on a model that adds BOS; llama.cpp's llama-server returns none"
    )
    return ReaderError(f"the reader server at {self.base_url} cannot score continuations: {missing} ({hint})")

  def _score_one(self, request: Request, continuation: str, abort: threading.Event) -> Scored:
    if self.endpoint == "chat":
      return self._score_chat(request, continuation, abort)
    prompt = self.template.render(request.question, request.passages)
    text = continuation if prompt[-1:].isspace() else " " + continuation
    body = {"model": self.model, "prompt": prompt + text, "temperature": 0.0, "max_tokens": 1}
    url = f"{self.base_url}/completions"
    if not self._prompt_logprobs:
      try:
        data, latency = self._post(url, {**body, "echo": True, "logprobs": 0, "min_tokens": 1}, abort, scoring=True)
      except _Unusable as e:
        return Scored(latency_s=e.latency, ok=False, error=e.error)
      try:
        choice = data["choices"][0]
        echoed = isinstance(choice.get("text"), str) and choice["text"].startswith(prompt + text)
        logprobs = choice.get("logprobs") or {}
        if echoed and logprobs.get("token_logprobs"):
          return self._from_echo(data, logprobs, len(prompt), len(prompt + text), latency)
        if choice.get("prompt_logprobs") is not None:  # a server that sends them unasked
          return self._from_prompt_logprobs(data, choice["prompt_logprobs"], text, latency)
      except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        return Scored(latency_s=latency, ok=False, error=f"malformed reply: {e!r}")
    try:  # echo not honoured: vLLM's prompt_logprobs
      data, latency = self._post(url, {**body, "prompt_logprobs": 0}, abort, scoring=True)
    except _Unusable as e:
      return Scored(latency_s=e.latency, ok=False, error=e.error)
    try:
      found = data["choices"][0].get("prompt_logprobs")
      if found is None:
        raise self._cannot_score(
            "its completions endpoint returned no prompt log-probabilities (echo, prompt_logprobs)"
        )
      self._prompt_logprobs = True
      return self._from_prompt_logprobs(data, found, text, latency)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
      return Scored(latency_s=latency, ok=False, error=f"malformed reply: {e!r}")

  def _score_chat(self, request: Request, continuation: str, abort: threading.Event) -> Scored:
    messages = self.template.messages(request.question, request.passages)
    body = {
        "model": self.model,
        "messages": [*messages, {"role": "assistant", "content": continuation}],
        "continue_final_message": True,
        "add_generation_prompt": False,
        "prompt_logprobs": 0,
        "temperature": 0.0,
        "max_tokens": 1,
    }
    try:
      data, latency = self._post(f"{self.base_url}/chat/completions", body, abort, scoring=True)
    except _Unusable as e:
      return Scored(latency_s=e.latency, ok=False, error=e.error)
    if not isinstance(data, dict) or data.get("prompt_logprobs") is None:
      raise self._cannot_score(
          "its chat endpoint returned no prompt_logprobs (vLLM's extension)",
          "set reader.endpoint=completions to score on a server that echoes prompt log-probabilities",
      )
    try:
      return self._from_prompt_logprobs(data, data["prompt_logprobs"], continuation, latency)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
      return Scored(latency_s=latency, ok=False, error=f"malformed reply: {e!r}")

  def _from_echo(self, data, logprobs: dict, start: int, end: int, latency: float) -> Scored:
    """The echoed tokens that overlap text[start:end], the continuation.

    Offsets are aligned at the end: the first generated token starts at `end` (some servers count a
    BOS token's text, "<s>", at the start). A reply whose generated token is missing or starts
    before `end` comes from llama-cpp-python's server shifting the log-probabilities by one token
    (a model without BOS): ReaderError.
    """
    tokens, values = logprobs["tokens"], logprobs["token_logprobs"]
    offsets = logprobs.get("text_offset")
    if not offsets:  # offsets from the token texts
      offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    if not len(tokens) == len(values) == len(offsets):
      raise ValueError(f"{len(tokens)} tokens, {len(values)} logprobs, {len(offsets)} offsets")
    usage = data.get("usage") or {}
    generated = int(usage.get("completion_tokens") or 0)
    if generated:
      first = len(tokens) - generated
      shift = offsets[first] - end if 0 <= first < len(tokens) else -1
      if shift < 0:
        raise self._cannot_score(
            "its echoed log-probabilities leave out the generated token: llama-cpp-python's server does so when it "
            "pairs each prompt token with the next position's log-probabilities (a model that adds no BOS token)",
            "use reader.backend=llama_cpp, vLLM, or a model that adds BOS",
        )
      offsets = [o - shift for o in offsets]
    picked = [v for t, v, o in zip(tokens, values, offsets) if o < end and o + max(len(t), 1) > start]
    prompt_tokens = int(usage.get("prompt_tokens") or len(tokens) - generated)
    return self._scored(picked, prompt_tokens - len(picked), latency)

  def _from_prompt_logprobs(self, data, found: list, continuation: str, latency: float) -> Scored:
    """The last prompt tokens that spell `continuation` (vLLM: one {token_id: {logprob, decoded_token}}
    per prompt token, None for the first)."""
    picked: list[float | None] = []
    covered = 0
    for entry in reversed(found):
      if covered >= len(continuation):
        break
      if entry is None:
        picked.append(None)
        break
      if len(entry) != 1:
        raise ValueError(f"{len(entry)} log-probabilities for one prompt token (asked for prompt_logprobs=0)")
      (value,) = entry.values()
      picked.append(value["logprob"])
      covered += max(len(value.get("decoded_token") or ""), 1)
    return self._scored(picked[::-1], len(found) - len(picked), latency)

  @staticmethod
  def _scored(picked: list, prompt_tokens: int, latency: float) -> Scored:
    """prompt_tokens: the tokens before the continuation."""
    if not picked or any(v is None for v in picked):
      return Scored(
          latency_s=latency, ok=False, error="the server returned no log-probability for a continuation token"
      )
    return Scored(logprobs=tuple(float(v) for v in picked), prompt_tokens=prompt_tokens, latency_s=latency)
