#!/usr/bin/env bash
# Where a grid submitted by tools/experiments.sh --slurm stands, one line per task:
#
#   tools/slurm/status.sh SUB        (SUB: the submission's directory, runs/exp/slurm/grid-*)
#
# A task is "done" or "FAILED (exit N)" once its last attempt wrote task-N.exit; until then
# Slurm's state (pending, running, requeued...) is shown where squeue still lists it. Each line
# also names the run directory and its latest checkpoint. Exits 0 when every task is done, 1
# when one failed, 3 while some are unfinished.
set -uo pipefail

sub=${1:?usage: tools/slurm/status.sh SUB (a runs/exp/slurm/grid-* directory)}
list="$sub/runs.txt"
[ -f "$list" ] || { echo "status.sh: no $list (not a submission directory)" >&2; exit 2; }
job=$(cat "$sub/job-id" 2>/dev/null || true)

declare -A state=()
if [ -n "$job" ] && command -v squeue >/dev/null 2>&1; then
    # %K: the array index; -r: one line per task, also for tasks not started yet.
    while read -r index st; do
        state[$index]=$st
    done < <(timeout 20 squeue -h -r -j "$job" -o '%K %T' 2>/dev/null || true)
fi

ndone=0 nfailed=0 nopen=0 task=0
while IFS= read -r dir; do
    ckpt=$(cat "$dir/latest" 2>/dev/null || echo none)
    if [ -f "$sub/task-$task.exit" ]; then
        rc=$(cat "$sub/task-$task.exit")
        if [ "$rc" = 0 ]; then
            what="done"
            ndone=$((ndone + 1))
        else
            what="FAILED (exit $rc)"
            nfailed=$((nfailed + 1))
        fi
    else
        what=${state[$task]:-not listed by squeue}
        what=${what,,}
        nopen=$((nopen + 1))
    fi
    printf '%3d  %-26s %-28s checkpoint %s\n' "$task" "$what" "$dir" "$ckpt"
    task=$((task + 1))
done < "$list"
echo "job ${job:-?}: $task tasks, $ndone done, $nfailed failed, $nopen unfinished (logs: $sub/task-N.log)"
[ $nfailed -eq 0 ] || exit 1
[ $nopen -eq 0 ] || exit 3
