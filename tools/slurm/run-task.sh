#!/usr/bin/env bash
# One run of a grid, safe to start any number of times (tools/experiments.sh --slurm writes one
# call per task into the grid's command list):
#
#   tools/slurm/run-task.sh DIR FRESH RESUME [AFTER]
#
# FRESH, RESUME and AFTER are shell commands (each one argument). The choice is made now, when
# the task runs, not when the list was written: if DIR holds a checkpoint (DIR/latest, or
# DIR/train.json for runs of the older layout) RESUME continues it, which for a run that has
# finished trains nothing and exits 0 at once; otherwise FRESH starts it. A failing RESUME is
# reported as such and never followed by FRESH. AFTER (the rl grids' evaluations) runs only
# once the training command has succeeded. The exit status is the first failing command's.
set -uo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: run-task.sh DIR FRESH RESUME [AFTER]" >&2
    exit 2
fi
dir=$1 fresh=$2 resume=$3 after=${4:-}

if [ -f "$dir/latest" ] || [ -f "$dir/train.json" ]; then
    echo "run-task: $dir holds a checkpoint ($(cat "$dir/latest" 2>/dev/null || echo train.json)): resuming it"
    what=resume cmd=$resume
else
    echo "run-task: $dir holds no checkpoint: starting the run"
    what=start cmd=$fresh
fi
echo "+ $cmd"
bash -c "$cmd"
rc=$?
if [ $rc -ne 0 ]; then
    echo "run-task: the $what of $dir failed (exit $rc)" >&2
    exit $rc
fi
if [ -n "$after" ]; then
    echo "+ $after"
    bash -c "$after"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "run-task: training $dir succeeded but what follows it failed (exit $rc)" >&2
        exit $rc
    fi
fi
echo "run-task: $dir done"
