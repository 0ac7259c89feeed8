#!/usr/bin/env bash
# One process on this machine (all local devices). Usage:
#   launch/local.sh [CONFIG] [WORKDIR] [--config.x=y ...]
#   launch/local.sh configs/nq.py runs/nq                 # the embedded default (about 20 min on 2 CPU cores)
#   launch/local.sh configs/smoke.py runs/smoke           # seconds to minutes
#   launch/local.sh configs/nq.py runs/nq --config.mode=export
# A rerun with the same WORKDIR resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-configs/nq.py}"
WORKDIR="${2:-runs/$(basename "${CONFIG%%:*}" .py)}"
shift $(( $# > 2 ? 2 : $# ))
export TOKENIZERS_PARALLELISM=false
exec python -m rrpo_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
