#!/usr/bin/env bash
# The cross-fitted NQ experiment as one resumable queue (docs/results.md, "Cross-fitted NQ"): the
# learnability check with both rewards, the pre-registered reward rule, the fold warm-ups, RRPO
# seeds 0 and 1 on both folds, transfer, the reader-preference warm-up control. Rerun to resume:
# every stage resumes from its checkpoints and a finished stage is skipped; one reader cache
# (runs/exp/nq_cf_reader_cache.sqlite) keeps every answer and score. Run from the directory that
# holds runs/ (niced, in the background):
#   CODE=/path/to/frozen/checkout nohup bash launch/nq_crossfit_queue.sh >> runs/queue.log 2>&1 &
# CODE: a checkout of the code frozen for the whole experiment (the runs used commit ff0aa26;
# default: this repository, which then must not change while the queue runs).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
export PYTHONPATH=$CODE
CFG=$CODE/configs/experiments/nq_crossfit.py
PILOT=runs/exp/nq_cf_pilot_sft_has_answer_f0/checkpoints/sft
RULE=$(cd "$(dirname "$0")/.." && pwd)/tools/crossfit_reward_rule.py
source "$(dirname "$0")/crossfit_queue_lib.sh"  # run NAME WORKDIR RESULTS ARGS..., reward_from FILE
# 0. the 100-step has_answer warm-up pilot of fold 0 (the learnability check starts from it)
run pilot_sft_has_answer_f0 nq_cf_pilot_sft_has_answer_f0 results.json --config=$CFG:sft=has_answer,fold=0 \
  --config.sft.steps=100 --config.sft.warmup_steps=10 || exit 1
# 1. the learnability check (from the 100-step has_answer pilot of fold 0), both rewards, each also
#    evaluated once on val (the rule's tie-break)
run learn nq_cf_learn results.json --config=$CFG:learn --config.rrpo.init_from=$PILOT || exit 1
run learn_ll nq_cf_learn_ll results.json --config=$CFG:learn,reward=ll --config.rrpo.init_from=$PILOT || exit 1
for r in "" _ll; do
  run learn${r}_val nq_cf_learn$r results_val.json --config=$CFG:learn${r:+,reward=ll} --config.rrpo.init_from=$PILOT \
    --config.mode=eval --config.eval.name=val --config.data.eval_split=val --config.eval.systems=reference,policy || exit 1
done
# 2. the pre-registered rule picks the reward
python "$RULE" runs/exp/nq_cf_learn runs/exp/nq_cf_learn_ll --out=runs/exp/nq_cf_reward_choice.json || exit 1
reward_from runs/exp/nq_cf_reward_choice.json
# 3. the fold warm-ups (400 steps, has_answer): the references
for f in 0 1; do run sft_has_answer_f$f nq_cf_sft_has_answer_f$f results.json --config=$CFG:sft=has_answer,fold=$f || exit 1; done
# 4. RRPO, seed 0 then seed 1, both folds, evaluated on the held-out fold at the last step
for s in 0 1; do for f in 0 1; do
  run rrpo_s${s}_f$f$SUF nq_cf_rrpo_s${s}_f$f$SUF results.json --config=$CFG:rrpo,fold=$f,seed=$s$RW || exit 1
done; done
# 5. transfer (SmolLM2-135M) on the same checkpoints
for s in 0 1; do for f in 0 1; do
  run transfer_s${s}_f$f$SUF nq_cf_rrpo_s${s}_f$f$SUF results_transfer.json --config=$CFG:rrpo,fold=$f,seed=$s$RW,transfer || exit 1
done; done
# 6. the reader-preference warm-up per fold, evaluated on the held-out fold (a control)
for f in 0 1; do
  run sft_reader_f$f nq_cf_sft_reader_f$f results.json --config=$CFG:sft=reader,fold=$f --config.data.eval_split=heldout --config.eval.systems=reference || exit 1
done
echo "== $(date -u +%H:%M:%S) NQ queue done"
