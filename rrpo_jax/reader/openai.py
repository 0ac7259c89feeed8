"""Reader over any OpenAI-compatible server (vLLM, SGLang, llama.cpp servers, hosted APIs)."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import Sequence

import httpx

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import DEFAULTS, Reader, ReaderError, ReaderUnavailableError, Request, Response

_FATAL = (401, 403, 404)  # wrong key, model or URL: retrying cannot help


class OpenAIReader(Reader):
  """Chat or completion endpoint, `concurrency` requests in flight, retries with backoff.

  Connection errors, timeouts, 429 and 5xx are retried up to `max_retries` times with delays
  backoff_s * 2**attempt (capped at max_backoff_s); then ReaderUnavailableError. 401/403/404 raise
  ReaderError at once. Other 4xx and replies without an answer come back as failed / malformed
  responses. The API key is read from the environment variable `api_key_env` and only ever sent
  in the Authorization header.
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

  def _one(self, request: Request, abort: threading.Event) -> Response:
    url, body = self._payload(request)
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
      if reply.status_code == 429 or reply.status_code >= 500:
        last = f"HTTP {reply.status_code}: {self._quote(reply)}"
        continue
      if reply.status_code in _FATAL:
        raise ReaderError(
            f"{url} answered HTTP {reply.status_code} (check base_url, model and the API key "
            f"variable): {self._quote(reply)}"
        )
      if reply.status_code >= 400:
        return Response(text="", latency_s=latency, ok=False, error=f"HTTP {reply.status_code}: {self._quote(reply)}")
      try:
        data = reply.json()
      except ValueError as e:
        return Response(text="", latency_s=latency, malformed=True, error=f"malformed reply: {e}")
      return self._parse(data, latency)
    raise ReaderUnavailableError(f"reader at {self.base_url} failed {self.max_retries + 1} attempts; last: {last}")

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    abort = threading.Event()
    if self.concurrency == 1 or len(requests) == 1:
      return [self._one(r, abort) for r in requests]
    pool = concurrent.futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix="reader")
    try:
      futures = [pool.submit(self._one, r, abort) for r in requests]  # FIFO: prefixes stay adjacent
      concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
      for f in futures:
        if f.done() and f.exception() is not None:
          raise f.exception()
      return [f.result() for f in futures]
    except BaseException:
      abort.set()
      raise
    finally:
      pool.shutdown(wait=True, cancel_futures=True)
