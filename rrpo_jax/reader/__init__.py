"""Reader backends (openai, llama_cpp, hf), prompt template and the SQLite response cache.

make_reader(config) reads these fields (a dict, ConfigDict or any object with attributes; all
optional):
  backend: "llama_cpp" (default) | "openai" | "hf"
  model: GGUF path or alias ("smollm2-135m-instruct" default, "gemma3-270m") for llama_cpp; the served
    model name for openai; a local checkpoint path for hf
  Unset fields may be None or "" (and n_threads / max_passage_chars 0).
  max_tokens (32), chat (None = auto from the model's chat template; openai: endpoint decides)
  prompt fields: instruction, layout, passage, separator, system, max_passage_chars
  openai: base_url, endpoint ("chat" | "completions"), api_key_env ("OPENAI_API_KEY"), concurrency (8),
    timeout_s (60), max_retries (5), backoff_s (0.5), max_backoff_s (8)
  llama_cpp: n_ctx (2048), n_threads (all cores)
  hf: batch_size (8), device, dtype
make_cache(config, workdir) reads cache_path ("" = <workdir>/reader_cache.sqlite).
"""

from __future__ import annotations

import dataclasses
import os

from rrpo_jax.reader.base import (Passage, Reader, ReaderError, ReaderUnavailableError, Request,  # noqa: F401
                                  Response)
from rrpo_jax.reader.cache import CacheError, ResponseCache, cache_key  # noqa: F401
from rrpo_jax.reader.prompts import PromptTemplate, postprocess  # noqa: F401

_MISSING = object()


def _get(config, name, default=None):
  if config is None:
    return default
  if isinstance(config, dict):
    value = config.get(name, _MISSING)
  else:
    try:
      value = getattr(config, name)
    except (AttributeError, KeyError):
      value = _MISSING
  return default if value is _MISSING or value is None or value == "" else value


def make_template(config=None) -> PromptTemplate:
  """PromptTemplate from the config's prompt fields (defaults for the rest)."""
  fields = {f.name: _get(config, f.name) for f in dataclasses.fields(PromptTemplate)}
  if fields["max_passage_chars"] is not None and fields["max_passage_chars"] <= 0:
    fields["max_passage_chars"] = None  # 0 / -1: no limit
  return PromptTemplate(**{k: v for k, v in fields.items() if v is not None})


def make_cache(config=None, workdir: str | None = None) -> ResponseCache:
  """The SQLite response cache at config.cache_path, else <workdir>/reader_cache.sqlite.

  Keep it on a local disk (SQLite locking is unreliable on network file systems): on several
  hosts, give each host its own path.
  """
  path = _get(config, "cache_path")
  if not path:
    if not workdir:
      raise ValueError("make_cache needs config.cache_path or a workdir")
    path = os.path.join(workdir, "reader_cache.sqlite")
  return ResponseCache(path)


def make_reader(config=None) -> Reader:
  """Builds the configured reader (see the module docstring for the fields)."""
  backend = _get(config, "backend", "llama_cpp")
  common = {"template": make_template(config), "max_tokens": int(_get(config, "max_tokens", 32))}
  chat = _get(config, "chat")
  if backend == "openai":
    from rrpo_jax.reader.openai import OpenAIReader  # pylint: disable=import-outside-toplevel
    base_url = _get(config, "base_url")
    if not base_url:
      raise ValueError("reader backend 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
    return OpenAIReader(base_url=base_url, model=_get(config, "model", "default"),
                        endpoint=_get(config, "endpoint", "chat"),
                        api_key_env=_get(config, "api_key_env", "OPENAI_API_KEY"),
                        concurrency=_get(config, "concurrency", 8), timeout_s=_get(config, "timeout_s", 60.0),
                        max_retries=_get(config, "max_retries", 5), backoff_s=_get(config, "backoff_s", 0.5),
                        max_backoff_s=_get(config, "max_backoff_s", 8.0), **common)
  if backend == "llama_cpp":
    from rrpo_jax.reader.llama_cpp import LlamaCppReader  # pylint: disable=import-outside-toplevel
    return LlamaCppReader(model=_get(config, "model"), n_ctx=_get(config, "n_ctx", 2048),
                          n_threads=_get(config, "n_threads"), chat=chat, **common)
  if backend == "hf":
    from rrpo_jax.reader.hf import HFReader  # pylint: disable=import-outside-toplevel
    model = _get(config, "model")
    if not model:
      raise ValueError("reader backend 'hf' needs model (a local checkpoint path)")
    return HFReader(model=model, batch_size=_get(config, "batch_size", 8), device=_get(config, "device"),
                    dtype=_get(config, "dtype"), chat=chat, **common)
  raise ValueError(f"unknown reader backend {backend!r}: use 'openai', 'llama_cpp' or 'hf'")
