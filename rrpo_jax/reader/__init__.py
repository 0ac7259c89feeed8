"""Reader backends (openai, llama_cpp, hf; fake for tests), prompt template and the response caches.

make_reader(config) builds the backend registered under config.backend (BACKENDS; a new backend is
one `@register_backend(name)` builder here plus a test) and reads these fields (a dict, ConfigDict
or any object with attributes; all optional):
  backend: "llama_cpp" (default) | "openai" | "hf" | "fake" (deterministic, no model: tests)
  model: GGUF path or alias ("smollm2-135m-instruct" default, "gemma3-270m") for llama_cpp; the served
    model name for openai; a local checkpoint path for hf
  Unset fields may be None or "" (and n_threads / max_passage_chars 0).
  Defaults (in parentheses) are DEFAULTS, the one source the config's reader section is built from.
  max_tokens (16), chat (None / "" = auto from the model's chat template, "true" / "false";
    openai: endpoint decides)
  prompt fields: instruction, layout, passage, separator, system, max_passage_chars
  openai: base_url, endpoint ("chat" | "completions"), api_key_env ("OPENAI_API_KEY"), concurrency (8),
    timeout_s (60), max_retries (5), backoff_s (0.5), max_backoff_s (8)
  llama_cpp: n_ctx (2048), n_threads (all cores)
  hf: batch_size (8), device, dtype
make_cache(config, workdir, processes=N) reads cache_path: a file path (SQLite), a
postgresql:// URL (a server shared by all hosts; CACHES names the backends), or "" (SQLite in the
workdir on one process with a local workdir, else a per-host file on local scratch).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from absl import logging

from rrpo_jax import paths
from rrpo_jax.reader.base import (
    DEFAULTS,
    Passage,
    Reader,
    ReaderError,
    ReaderUnavailableError,  # noqa: F401
    Request,
    Response,
    Scored,  # noqa: F401
)
from rrpo_jax.reader.cache import (  # noqa: F401
    Cache,
    CacheError,
    ResponseCache,
    cache_key,
    per_host_path,
    response_as_score,
    score_as_response,
    score_key,
)
from rrpo_jax.reader.prompts import PromptTemplate, postprocess  # noqa: F401
from rrpo_jax.registry import Registry, one_of

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


# Cache backends by the scheme of cache_path (a plain path is "sqlite"): build(location) -> Cache.
CACHES: Registry[Callable[[str], Cache]] = Registry("reader cache backend")
CACHES.register("sqlite", ResponseCache)


def _postgres(url: str) -> Cache:
  from rrpo_jax.reader.postgres import PostgresCache  # pylint: disable=import-outside-toplevel

  return PostgresCache(url)


for _scheme in ("postgresql", "postgres"):
  CACHES.register(_scheme, _postgres)


def cache_scheme(path: str) -> str:
  """The CACHES name for a cache_path: its URL scheme, or "sqlite" for a file path."""
  scheme, sep, _ = str(path).partition("://")
  return scheme.lower() if sep else "sqlite"


def cache_problem(path: str) -> str | None:
  """Why cache_path cannot name a cache (config validation), or None."""
  if path and cache_scheme(path) not in CACHES:
    return f"unknown cache backend {cache_scheme(path)!r}: use a file path (SQLite) or a postgresql:// URL"
  return None


def make_cache(config=None, workdir: str | None = None, *, processes: int = 1) -> Cache:
  """The response cache at config.cache_path; when unset, SQLite at <workdir>/reader_cache.sqlite
  if the workdir is a local directory and the run has one process, else SQLite at
  per_host_path(workdir) on this host's local disk (SQLite cannot be shared across hosts; a
  postgresql:// cache_path can)."""
  path = _get(config, "cache_path")
  if not path:
    if not workdir:
      raise ValueError("make_cache needs config.cache_path or a workdir")
    if paths.is_local(workdir) and processes == 1:
      path = os.path.join(workdir, "reader_cache.sqlite")
    else:
      path = per_host_path(workdir)
      logging.warning(
          "reader cache: SQLite on this host at %s (workdir %s, %d processes); set "
          "reader.cache_path=postgresql://... to share one cache between hosts",
          path,
          workdir,
          processes,
      )
  problem = cache_problem(path)
  if problem:
    raise CacheError(f"reader cache_path: {problem}")
  return CACHES.get(cache_scheme(path))(path)


def make_reader(config=None) -> Reader:
  """Builds the configured reader (see the module docstring for the fields)."""
  backend = _get(config, "backend", "llama_cpp")
  if backend not in BACKENDS:
    raise ValueError(f"unknown reader backend {backend!r}: use {one_of(repr(n) for n in BACKENDS.names())}")
  common = {"template": make_template(config), "max_tokens": int(_get(config, "max_tokens", DEFAULTS["max_tokens"]))}
  return BACKENDS.get(backend).build(config, chat=_chat(_get(config, "chat")), **common)


def _chat(value):
  """None (auto), a bool, or the config's string form "true" / "false" ("" = auto)."""
  if isinstance(value, str):
    if value.lower() not in ("true", "false"):
      raise ValueError(f"reader chat must be '', 'true' or 'false', got {value!r}")
    return value.lower() == "true"
  return value


@dataclasses.dataclass(frozen=True)
class Backend:
  """build(config, *, chat, template, max_tokens) -> Reader; check(config) -> (field, problem) or
  None, run by config validation at start-up (before any model loads)."""

  build: Callable[..., Reader]
  check: Callable[[Any], tuple[str, str] | None] = lambda config: None


BACKENDS: Registry[Backend] = Registry("reader backend")


def register_backend(name: str, *, check: Callable[[Any], tuple[str, str] | None] | None = None):
  """Decorator: registers build(config, *, chat, template, max_tokens) -> Reader as backend `name`."""

  def add(build):
    BACKENDS.register(name, Backend(build, check) if check else Backend(build))
    return build

  return add


# The backends import their heavy dependencies (httpx, llama_cpp, torch) only when built: a run
# loads only the one it uses.
def _check_llama_cpp(config):
  model = str(_get(config, "model", ""))
  if model and (os.sep in model or model.startswith(".")) and not os.path.isfile(model):
    return "model", f"GGUF file not found: {model}"
  return None


@register_backend("llama_cpp", check=_check_llama_cpp)
def _llama_cpp(config, *, chat, **common) -> Reader:
  from rrpo_jax.reader.llama_cpp import LlamaCppReader  # pylint: disable=import-outside-toplevel

  return LlamaCppReader(
      model=_get(config, "model"),
      n_ctx=_get(config, "n_ctx", DEFAULTS["n_ctx"]),
      n_threads=_get(config, "n_threads"),
      chat=chat,
      **common,
  )


def _check_openai(config):
  return None if _get(config, "base_url") else ("base_url", "the openai backend needs a server URL")


@register_backend("openai", check=_check_openai)
def _openai(config, *, chat, **common) -> Reader:
  del chat  # the endpoint decides
  from rrpo_jax.reader.openai import OpenAIReader  # pylint: disable=import-outside-toplevel

  base_url = _get(config, "base_url")
  if not base_url:
    raise ValueError("reader backend 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
  return OpenAIReader(
      base_url=base_url,
      model=_get(config, "model", "default"),
      **{
          name: _get(config, name, DEFAULTS[name])
          for name in (
              "endpoint",
              "api_key_env",
              "concurrency",
              "timeout_s",
              "max_retries",
              "backoff_s",
              "max_backoff_s",
          )
      },
      **common,
  )


def _check_hf(config):
  model = _get(config, "model", "")
  return None if os.path.isdir(str(model)) else ("model", f"the hf backend needs a local model dir: {model}")


@register_backend("hf", check=_check_hf)
def _hf(config, *, chat, **common) -> Reader:
  from rrpo_jax.reader.hf import HFReader  # pylint: disable=import-outside-toplevel

  model = _get(config, "model")
  if not model:
    raise ValueError("reader backend 'hf' needs model (a local checkpoint path)")
  return HFReader(
      model=model,
      batch_size=_get(config, "batch_size", DEFAULTS["batch_size"]),
      device=_get(config, "device"),
      dtype=_get(config, "dtype"),
      chat=chat,
      **common,
  )


@register_backend("fake")
def _fake(config, *, chat, **common) -> Reader:
  """Deterministic, no model, no server (tests and benchmarks; reader/fake.py)."""
  del config, chat
  from rrpo_jax.reader.fake import FakeReader  # pylint: disable=import-outside-toplevel

  return FakeReader(**common)
