#!/usr/bin/env bash
# Serve the reader LLM behind an OpenAI-compatible API with vLLM (greedy decoding is requested per
# call by rrpo_jax; prefix caching lets the k prefix prompts of a query share their KV cache).
#   launch/reader_vllm.sh [MODEL] [PORT] [extra vllm args...]
#   launch/reader_vllm.sh Qwen/Qwen2.5-7B-Instruct 8000 --tensor-parallel-size 2
# Then train with: --config.reader.backend=openai --config.reader.base_url=http://HOST:PORT/v1
#                  --config.reader.model=MODEL   (the :paper configs set these for localhost:8000)
# Needs `pip install -e '.[vllm]'` (or a vLLM container) and the model weights available locally or
# from your model hub mirror. If the server needs a key, pass --api-key and export it under the name
# in config.reader.api_key_env (default OPENAI_API_KEY) for the trainer; the key is never logged.
set -euo pipefail
MODEL="${1:-Qwen/Qwen2.5-7B-Instruct}"
PORT="${2:-8000}"
shift $(( $# > 2 ? 2 : $# ))
exec vllm serve "$MODEL" --host 0.0.0.0 --port "$PORT" --enable-prefix-caching \
  --max-num-seqs 256 --gpu-memory-utilization 0.9 --generation-config vllm "$@"
