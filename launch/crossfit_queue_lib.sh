# Shared by the cross-fitted experiment queues (nq_crossfit_queue.sh, hotpotqa_crossfit_queue.sh):
# `run NAME WORKDIR RESULTS ARGS...` runs one stage of the entry point, niced, with its log in
# runs/exp/NAME.log, unless runs/exp/WORKDIR/RESULTS already exists (a finished stage is skipped;
# an unfinished one resumes from its checkpoints). Sourced from the directory that holds runs/.
done_() { [ -f "runs/exp/$1/${2:-results.json}" ]; }
run() { local name=$1 wd=$2 res=$3; shift 3
  if done_ "$wd" "$res"; then echo "== skip $name (runs/exp/$wd/$res exists)"; return 0; fi
  echo "== $(date -u +%H:%M:%S) start $name"
  nice -n 5 python -m rrpo_jax.main "$@" --workdir=runs/exp/$wd > runs/exp/$name.log 2>&1
  local rc=$?; echo "== $(date -u +%H:%M:%S) end $name rc=$rc"; return $rc; }
# `reward_from FILE`: the reward rule's choice (tools/crossfit_reward_rule.py's JSON) as the RRPO
# stages' argument suffix RW (",reward=ll" or "") and workdir suffix SUF ("_ll" or "").
reward_from() { if grep -q '"reward": "ll"' "$1"; then RW=",reward=ll"; SUF=_ll; else RW=""; SUF=""; fi; }
