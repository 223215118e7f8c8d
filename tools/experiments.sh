#!/usr/bin/env bash
# The experiments of docs/experiments.md as a grid of independent `rims train` runs.
#
#   tools/experiments.sh [--list] [--jobs J] [--seeds "1 2 3"] [--runs DIR] [GRID...]
#   tools/experiments.sh --slurm [--max-parallel K] [--cpus C] [--mem M] [--time T]
#                        [--sbatch "OPTIONS"] [--list] [--seeds ...] [--runs DIR] [GRID...]
#
# GRID names one or more of: copying, smnist, hypotheses, balls, rl, rl-memory, smoke (default:
# copying smnist; smoke is 2 tiny copying runs a seed, seconds each, to try a set-up). Every run
# is one clean job: `rims train ... --seed S --out DIR/NAME-sS` (the rl grids: `rims rl train`,
# then `rims rl eval --json` on each test world into DIR/NAME-sS/eval.jsonl). Running the script
# again resumes unfinished runs from their last checkpoint and leaves finished ones alone, so
# it can be stopped at any time. With --jobs J, J runs go at once (each on RIMS_THREADS=1; the
# small models here run faster on one thread each than on all cores).
#
# --list prints the commands, one per line, instead of running them (whether a run resumes is
# decided when the list is printed).
#
# --slurm submits the grid to Slurm as one array job, one task per run, and prints its job id:
# the task list goes to DIR/slurm/grid-TIME-PID/commands.txt (each line a tools/slurm/run-task.sh
# call that decides when the task runs whether to resume), with each task's log (task-N.log) and
# exit status (task-N.exit) beside it. --max-parallel K lets at most K tasks run at once. --cpus
# (default 1; RIMS_THREADS follows it), --mem (1G), --time (01:00:00) and --sbatch "OPTIONS"
# (e.g. "--partition=cpu --account=me") go to sbatch. Tasks are requeue-safe: a requeued or
# preempted task resumes its run, a finished one exits at once, and submitting the same grid
# again finishes what is left. `tools/slurm/status.sh DIR/slurm/grid-...` shows each task.
# --slurm --list prints the task list without submitting. See README.md, "Past one machine".
#
# Afterwards `rims summary DIR/copy-*` (or smnist-*) prints the mean ± std tables;
# `python3 tools/rl_summary.py DIR/dk-* DIR/mem-*` those of the rl grids.

# The grids' tables are read through `declare -n` (shellcheck sees them unused).
# shellcheck disable=SC2034
set -euo pipefail

rims=${RIMS:-target/release/rims}
runs=runs/exp
seeds="1 2 3"
jobs=1
list=0
slurm=0
max_parallel=
sbatch_opts=()
grids=()
usage_error() {
    echo "experiments.sh: $*" >&2
    exit 2
}
# The value of option $1, which must be there: `value "$@"`.
value() {
    [ $# -ge 2 ] || usage_error "$1 needs a value (see --help)"
}
positive() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "$1 takes a whole number of 1 or more, not '$2'"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --list) list=1 ;;
        --jobs) value "$@"; jobs=$2; shift ;;
        --seeds) value "$@"; seeds=$2; shift ;;
        --runs) value "$@"; runs=$2; shift ;;
        --slurm) slurm=1 ;;
        --max-parallel) value "$@"; positive "$@"; max_parallel=$2; shift ;;
        --cpus) value "$@"; positive "$@"; sbatch_opts+=("--cpus-per-task=$2"); shift ;;
        --mem) value "$@"; sbatch_opts+=("--mem=$2"); shift ;;
        --time) value "$@"; sbatch_opts+=("--time=$2"); shift ;;
        --sbatch) value "$@"; read -ra more <<< "$2"; sbatch_opts+=("${more[@]}"); shift ;;
        -h|--help) awk 'NR > 1 && /^$/ { exit } NR > 1' "$0"; exit 0 ;;
        copying|smnist|hypotheses|balls|rl|rl-memory|smoke) grids+=("${1/-/_}") ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ ${#grids[@]} -gt 0 ] || grids=(copying smnist)
if [ $slurm = 0 ] && { [ -n "$max_parallel" ] || [ ${#sbatch_opts[@]} -gt 0 ]; }; then
    usage_error "--max-parallel, --cpus, --mem, --time and --sbatch go with --slurm (on one machine: --jobs)"
fi

# Copying: 10 symbols, trained at gap 20, tested at 20 and 80 (4x). RIMs N=4 k=3 H=64 (state
# 256) against an LSTM of 256 units. The options that are not the authors' defaults
# (--lr-schedule cosine, --input-gain, zeroed state) are the main job's, for both models.
copying_common="--task copying --symbols 10 --train-len 20 --test-len 80 --no-carry --batch 32 \
--epochs 60 --iterations 200 --lr 5e-3 --lr-schedule cosine --eval-every 5 --embed 32"
declare -A copying=(
    [copy-rims]="$copying_common --model rims --mechanisms 4 --active 3 --hidden 64 --input-gain 20"
    [copy-lstm]="$copying_common --model lstm --hidden 256"
)

# Sequential MNIST on the bundled subset (6,400 training digits), trained at 14x14 and
# evaluated at 14, 16, 19 and 24: RIMs N=6 with k=4 and k=6 against an LSTM of equal state.
smnist_common="--task smnist --resolution 14 --batch 32 --epochs 10 --eval-every 5 --lr 5e-3 \
--embed 16 --forget-bias 1"
declare -A smnist=(
    [smnist-rims-k4]="$smnist_common --model rims --mechanisms 6 --active 4 --hidden 16 --input-gain 20"
    [smnist-rims-k6]="$smnist_common --model rims --mechanisms 6 --active 6 --hidden 16 --input-gain 20"
    [smnist-lstm]="$smnist_common --model lstm --hidden 96"
)

# Why RIMs did not start on sMNIST in the earlier short runs: the same short run with each
# suspect changed alone (one seed is enough to see a start or not).
hyp_data="--task smnist --resolution 14 --batch 32 --epochs 2 --eval-every 2 --lr 2e-3 --embed 16"
hyp_common="$hyp_data --model rims --mechanisms 6 --active 4 --hidden 16"
declare -A hypotheses=(
    [hyp-authors]="$hyp_common --forget-bias 0 --input-gain 1"
    [hyp-forget-bias]="$hyp_common --forget-bias 1 --input-gain 1"
    [hyp-input-gain]="$hyp_common --forget-bias 0 --input-gain 20"
    [hyp-both]="$hyp_common --forget-bias 1 --input-gain 20"
    [hyp-both-lr5e-3]="${hyp_common/--lr 2e-3/--lr 5e-3} --forget-bias 1 --input-gain 20"
    [hyp-lr5e-3]="${hyp_common/--lr 2e-3/--lr 5e-3} --forget-bias 0 --input-gain 1"
    [hyp-lstm]="$hyp_data --model lstm --hidden 96 --forget-bias 0"
)

# Bouncing balls (the paper's fig. 6 at laptop scale, docs/experiments.md): 32x32 frames, the
# small preset's frame networks (channels 8, 16, 32; dense 128), trained on 4 balls for 3,000
# steps, rolled out 15 frames on 4, 6-8 and curtained balls. RIMs N=6 k=4 H=32 against an LSTM of
# 122 units: 306k parameters each.
balls_common="--task balls --balls 4 --frame-size 32 --frame-channels 8,16,32 --frame-dense 128 \
--embed 128 --batch 16 --train-len 30 --test-len 15 --epochs 30 --iterations 100 --eval-every 10 \
--lr 3e-3 --lr-schedule cosine --input-gain 1"
declare -A balls=(
    [balls-rims]="$balls_common --model rims --mechanisms 6 --active 4 --hidden 32"
    [balls-lstm]="$balls_common --model lstm --hidden 122"
)

# Reinforcement learning (docs/experiments.md): recurrent PPO with torch_ac's settings (16 envs x
# 128 frames, 4 epochs, batch 256, recurrence 32, lr 1e-4), RIMs 4 x 16 with k = 3 against an
# LSTM of 64 units, trained on DoorKey-5x5 for 300k frames and evaluated on 5x5 to 16x16 (500
# episodes each); and the memory task, trained on Memory-S7 and evaluated on S7, S9 and S13.
declare -A rl=(
    [dk-rims]="--env doorkey-5x5 --model rims --frames 300000"
    [dk-lstm]="--env doorkey-5x5 --model lstm --frames 300000"
)
declare -A rl_memory=(
    [mem-rims]="--env memory-s7 --model rims --frames 1000000"
    [mem-lstm]="--env memory-s7 --model lstm --frames 1000000"
)
# A smoke test of a set-up (a cluster's, CI's): tiny copying runs of a few seconds each that
# checkpoint every epoch (0.1 to 0.3 s), so a task can be requeued part way through.
smoke_common="--task copying --symbols 5 --train-len 2 --test-len 5 --batch 4 --embed 4 \
--epochs 30 --iterations 500 --eval-every 1"
declare -A smoke=(
    [smoke-rims]="$smoke_common --model rims --mechanisms 3 --active 2 --hidden 4"
    [smoke-lstm]="$smoke_common --model lstm --hidden 8"
)

declare -A tests=(
    [rl]="doorkey-5x5 doorkey-6x6 doorkey-8x8 doorkey-16x16"
    [rl_memory]="memory-s7 memory-s9 memory-s13"
)

# Shell-quotes a word for the command lines below.
q() { printf '%q' "$1"; }
# Single-quotes a whole command, to be one argument of run-task.sh in a Slurm task line.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

if [ $slurm = 1 ]; then
    # A task runs in the submission's directory on some node: absolute paths throughout.
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    case "$rims" in */*) rims=$(realpath -m "$rims") ;; esac
    runs=$(realpath -m "$runs")
fi

commands=()
outs=()
# Seed-major order: a grid stopped early has every configuration at its first seeds.
for seed in $seeds; do
    for grid in "${grids[@]}"; do
        declare -n table=$grid
        for name in $(printf '%s\n' "${!table[@]}" | sort); do
            out="$runs/$name-s$seed"
            o=$(q "$out")
            r=$(q "$rims")
            outs+=("$out")
            if [ -n "${tests[$grid]:-}" ]; then
                # RL: train (or resume), then evaluate on each test world. The resume names the
                # run's length: without --frames it would take the default (300000) as a floor.
                frames=$(grep -oE -- '--frames [0-9]+' <<< "${table[$name]}" || true)
                fresh="$r rl train --device cpu ${table[$name]} --seed $seed --out $o"
                resume="$r rl train --device cpu --resume $o $frames"
                evals=""
                for world in ${tests[$grid]}; do
                    evals+=" && $r rl eval --device cpu --checkpoint $o --env $world --episodes 500 --json"
                done
                after="{ true$evals; } > $o/eval.jsonl.tmp && mv $o/eval.jsonl.tmp $o/eval.jsonl"
                if [ $slurm = 1 ]; then
                    # Evaluated already (after the last checkpoint): nothing to do.
                    after="[ $o/eval.jsonl -nt $o/latest ] || { $after; }"
                    commands+=("$(q "$here/slurm/run-task.sh") $o $(sq "$fresh") $(sq "$resume") $(sq "$after")")
                elif [ -f "$out/latest" ]; then
                    commands+=("$resume && $after")
                else
                    commands+=("$fresh && $after")
                fi
                continue
            fi
            fresh="$r train --device cpu ${table[$name]} --seed $seed --out $o"
            # Resume: flags come from the checkpoint; a finished run trains no further.
            resume="$r train --device cpu --resume $o"
            if [ $slurm = 1 ]; then
                # RIMS_THREADS comes from the task's --cpus (tools/slurm/array.sbatch).
                commands+=("$(q "$here/slurm/run-task.sh") $o $(sq "$fresh") $(sq "$resume")")
            # A checkpoint: latest names it (train.json directly in the directory: older runs).
            elif [ -f "$out/latest" ] || [ -f "$out/train.json" ]; then
                commands+=("RIMS_THREADS=1 $resume")
            else
                commands+=("RIMS_THREADS=1 $fresh")
            fi
        done
    done
done

if [ $list = 1 ]; then
    printf '%s\n' "${commands[@]}"
    exit 0
fi
[ -x "$rims" ] || command -v "$rims" >/dev/null 2>&1 \
    || { echo "experiments.sh: $rims not built (cargo build --release)" >&2; exit 1; }

if [ $slurm = 1 ]; then
    command -v sbatch >/dev/null 2>&1 || {
        echo "experiments.sh: --slurm needs Slurm's sbatch, which is not on PATH (run this on a" \
            "Slurm login node; --slurm --list prints the task lines without submitting)" >&2
        exit 1
    }
    n=${#commands[@]}
    # One directory per submission: the task list, the run directories, logs and exit markers.
    mkdir -p "$runs/slurm"
    sub="$runs/slurm/grid-$(date +%Y%m%d-%H%M%S)-$$"
    mkdir "$sub"
    printf '%s\n' "${commands[@]}" > "$sub/commands.txt"
    printf '%s\n' "${outs[@]}" > "$sub/runs.txt"
    array="0-$((n - 1))${max_parallel:+%$max_parallel}"
    if ! answer=$(timeout 120 sbatch --parsable --array="$array" --output="$sub/task-%a.log" \
        "${sbatch_opts[@]}" "$here/slurm/array.sbatch" "$sub/commands.txt"); then
        echo "experiments.sh: sbatch refused the job (above); nothing was submitted" >&2
        rm -rf "$sub"
        exit 1
    fi
    job=${answer%%;*}
    echo "$job" > "$sub/job-id"
    {
        echo "experiments.sh: submitted job $job, $n tasks (array $array): ${grids[*]//_/-}, seeds $seeds"
        echo "  commands and logs: $sub"
        echo "  watch:     squeue -j $job   or   tools/slurm/status.sh $sub"
    } >&2
    echo "$job"
    exit 0
fi

mkdir -p "$runs"
mkdir -p "$runs/logs"
# Each run's output goes to DIR/logs/NAME.log, so that DIR/NAME-* globs only run directories.
# shellcheck disable=SC2016 # the inner script's variables are its own
printf '%s\n' "${commands[@]}" | xargs -P "$jobs" -I{} bash -c '
    out=$(echo "{}" | sed -E "s/.*--(out|resume) ([^ ]+).*/\2/; s/ .*//")
    log="$(dirname "$out")/logs/$(basename "$out").log"
    echo "start $out"
    if ( {} ) >> "$log" 2>&1; then echo "done  $out"; else echo "FAILED $out (see $log)"; fi
'
