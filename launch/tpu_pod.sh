#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same command on every worker; jax.distributed.initialize() detects
# the topology itself (config.distributed.enabled=True, no address needed).
#
#   launch/tpu_pod.sh TPU_NAME ZONE [CONFIG] [WORKDIR] [--config.x=y ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/nq.py:paper gs://my-bucket/runs/nq
#
# Prerequisites on every worker: this repository at ~/rrpo_jax, `pip install -e '.[tpu]'`, the data
# files the config names, and a reader reachable from all workers (launch/reader_vllm.sh on a GPU
# host; set --config.reader.base_url). WORKDIR must be shared by all workers (a gs:// bucket or NFS):
# checkpoints are written collectively, metrics by worker 0 only.
set -euo pipefail
TPU_NAME="${1:?TPU name}"
ZONE="${2:?zone}"
CONFIG="${3:-configs/nq.py:paper}"
WORKDIR="${4:-runs/nq_paper}"
shift $(( $# > 4 ? 4 : $# ))
EXTRA=""
for a in "$@"; do EXTRA+=" $(printf '%q' "$a")"; done
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  cd ~/rrpo_jax && TOKENIZERS_PARALLELISM=false python -m rrpo_jax.main \
    --config=$CONFIG --workdir=$WORKDIR --config.distributed.enabled=True $EXTRA"
