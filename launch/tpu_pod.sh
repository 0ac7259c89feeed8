#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same command on every worker; jax.distributed.initialize() detects
# the topology itself (config.distributed.enabled=True, no address needed).
#
#   launch/tpu_pod.sh [--dry_run] TPU_NAME ZONE [CONFIG] [WORKDIR] [--config.x=y ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/nq.py:paper gs://my-bucket/runs/nq
#
# --dry_run prints the gcloud command, the command every worker runs and its environment, and
# runs nothing.
# Prerequisites on every worker: this repository at ~/rrpo_jax, `pip install -e '.[tpu,gcs]'` (gcs:
# the gs:// file system), the data files the config names, and a reader reachable from all workers
# (launch/reader_vllm.sh on a GPU host; set --config.reader.base_url). WORKDIR must be shared by all
# workers (a gs:// bucket or NFS): checkpoints are written collectively, metrics and results by
# worker 0 only. Reader cache: each worker keeps its own SQLite file on local disk ($RRPO_JAX_SCRATCH,
# else /tmp) unless --config.reader.cache_path=postgresql://HOST/DB names one shared server ('.[postgres]').
set -euo pipefail
DRY_RUN=0
if [[ "${1:-}" == "--dry_run" ]]; then DRY_RUN=1; shift; fi
TPU_NAME="${1:?TPU name}"
ZONE="${2:?zone}"
CONFIG="${3:-configs/nq.py:paper}"
WORKDIR="${4:-runs/nq_paper}"
shift $(( $# > 4 ? 4 : $# ))
EXTRA=""
for a in "$@"; do EXTRA+=" $(printf '%q' "$a")"; done
ENV="TOKENIZERS_PARALLELISM=false"
WORKER_CMD="cd ~/rrpo_jax && $ENV python -m rrpo_jax.main --config=$(printf '%q' "$CONFIG") \
--workdir=$(printf '%q' "$WORKDIR") --config.distributed.enabled=True$EXTRA"
if (( DRY_RUN )); then
  echo "gcloud compute tpus tpu-vm ssh $(printf '%q' "$TPU_NAME") --zone=$(printf '%q' "$ZONE") --worker=all --command=<below>"
  echo "environment (every worker): $ENV"
  echo "every worker runs: $WORKER_CMD"
  exit 0
fi
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$WORKER_CMD"
