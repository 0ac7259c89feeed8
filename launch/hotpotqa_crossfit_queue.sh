#!/usr/bin/env bash
# The cross-fitted HotpotQA experiment as one resumable queue (docs/results.md, "Cross-fitted
# HotpotQA"): the fold warm-ups on the supporting-paragraph labels, RRPO seeds 0 and 1 on both folds
# with the reward the NQ rule chose, transfer, the reader-preference warm-up control. Starts after
# the NQ queue has applied its reward rule (runs/exp/nq_cf_reward_choice.json). Rerun to resume, as
# the NQ queue; one reader cache (runs/exp/hotpotqa_cf_reader_cache.sqlite). Run from the directory
# that holds runs/ (niced, in the background):
#   CODE=/path/to/frozen/checkout nohup bash launch/hotpotqa_crossfit_queue.sh >> runs/queue.log 2>&1 &
# CODE: a checkout frozen for the whole experiment (default: this repository, which then must not
# change while the queue runs). The report:
#   python tools/crossfit_report.py --exp=hotpotqa_cf --warmup=is_supporting --out=results/hotpotqa_cf
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
export PYTHONPATH=$CODE
CFG=$CODE/configs/experiments/hotpotqa_crossfit.py
source "$(dirname "$0")/crossfit_queue_lib.sh"  # run NAME WORKDIR RESULTS ARGS..., reward_from FILE
# 0. the reward: NQ's choice, pre-registered for HotpotQA (no learnability check of its own)
if [ ! -f runs/exp/nq_cf_reward_choice.json ]; then
  echo "runs/exp/nq_cf_reward_choice.json: missing (the NQ queue's reward rule runs first)" >&2; exit 1
fi
cp runs/exp/nq_cf_reward_choice.json runs/exp/hotpotqa_cf_reward_choice.json
reward_from runs/exp/hotpotqa_cf_reward_choice.json
# 1. the fold warm-ups (200 steps, is_supporting): the references
for f in 0 1; do
  run hotpotqa_sft_is_supporting_f$f hotpotqa_cf_sft_is_supporting_f$f results.json --config=$CFG:sft=is_supporting,fold=$f || exit 1
done
# 2. RRPO, seed 0 then seed 1, both folds, evaluated on the held-out fold at the last step
for s in 0 1; do for f in 0 1; do
  run hotpotqa_rrpo_s${s}_f$f$SUF hotpotqa_cf_rrpo_s${s}_f$f$SUF results.json --config=$CFG:rrpo,fold=$f,seed=$s$RW || exit 1
done; done
# 3. transfer (SmolLM2-135M) on the same checkpoints
for s in 0 1; do for f in 0 1; do
  run hotpotqa_transfer_s${s}_f$f$SUF hotpotqa_cf_rrpo_s${s}_f$f$SUF results_transfer.json \
    --config=$CFG:rrpo,fold=$f,seed=$s$RW,transfer || exit 1
done; done
# 4. the reader-preference warm-up per fold, evaluated on the held-out fold (a control)
for f in 0 1; do
  run hotpotqa_sft_reader_f$f hotpotqa_cf_sft_reader_f$f results.json --config=$CFG:sft=reader,fold=$f \
    --config.data.eval_split=heldout --config.eval.systems=reference || exit 1
done
echo "== $(date -u +%H:%M:%S) HotpotQA queue done"
