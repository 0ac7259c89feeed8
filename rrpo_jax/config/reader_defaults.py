"""The reader's defaults, a leaf module: the config's reader section (config.reader_config) and
make_reader (rrpo_jax.reader, re-exported as reader.DEFAULTS) both read them, so importing the
config imports no reader code."""

from __future__ import annotations

from typing import Any

# The one source of the reader's defaults: make_reader falls back to these for unset fields, the
# backends' constructors take max_tokens from here, and config.reader_config (the config's
# reader section) is built from them. Unset strings are "" (0 for n_threads / max_passage_chars).
DEFAULTS: dict[str, Any] = {
    "backend": "llama_cpp",
    "model": "smollm2-135m-instruct",  # llama_cpp's alias; openai falls back to "default", hf needs a path
    "base_url": "",
    "endpoint": "chat",
    "api_key_env": "OPENAI_API_KEY",
    "max_tokens": 16,
    "chat": "",
    "concurrency": 8,
    "timeout_s": 60.0,
    "max_retries": 5,
    "backoff_s": 0.5,
    "max_backoff_s": 8.0,
    "n_ctx": 2048,
    "n_threads": 0,
    "batch_size": 8,
    "device": "",
    "dtype": "",
    "instruction": "",
    "layout": "",
    "passage": "",
    "separator": "",
    "system": "",
    "max_passage_chars": 0,
    "cache_path": "",
}
