#!/usr/bin/env bash
# The experiments of docs/experiments.md as a grid of independent `rims train` runs.
#
#   tools/experiments.sh [--list] [--jobs J] [--seeds "1 2 3"] [--runs DIR] [GRID...]
#
# GRID names one or more of: copying, smnist, hypotheses, balls, rl, rl-memory (default: copying
# smnist). Every run is one clean job: `rims train ... --seed S --out DIR/NAME-sS` (the rl grids:
# `rims rl train`, then `rims rl eval --json` on each test world into DIR/NAME-sS/eval.jsonl). Running the script
# again resumes unfinished runs from their last checkpoint and leaves finished ones alone, so
# it can be stopped at any time. With --jobs J, J runs go at once (each on RIMS_THREADS=1; the
# small models here run faster on one thread each than on all cores).
#
# --list prints the commands, one per line, instead of running them: a cluster scheduler can
# run the same grid, e.g. in a Slurm array job:
#   cmd=$(tools/experiments.sh --list | sed -n "${SLURM_ARRAY_TASK_ID}p"); eval "$cmd"
#
# Afterwards `rims summary DIR/copy-*` (or smnist-*) prints the mean ± std tables;
# `python3 tools/rl_summary.py DIR/dk-* DIR/mem-*` those of the rl grids.
set -euo pipefail

rims=${RIMS:-target/release/rims}
runs=runs/exp
seeds="1 2 3"
jobs=1
list=0
grids=()
while [ $# -gt 0 ]; do
    case "$1" in
        --list) list=1 ;;
        --jobs) jobs=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --runs) runs=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        copying|smnist|hypotheses|balls|rl|rl-memory) grids+=("${1/-/_}") ;;
        *) echo "experiments.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#grids[@]} -gt 0 ] || grids=(copying smnist)

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
declare -A tests=(
    [rl]="doorkey-5x5 doorkey-6x6 doorkey-8x8 doorkey-16x16"
    [rl_memory]="memory-s7 memory-s9 memory-s13"
)

commands=()
# Seed-major order: a grid stopped early has every configuration at its first seeds.
for seed in $seeds; do
    for grid in "${grids[@]}"; do
        declare -n table=$grid
        for name in $(printf '%s\n' "${!table[@]}" | sort); do
            out="$runs/$name-s$seed"
            if [ -n "${tests[$grid]:-}" ]; then
                # RL: train (or resume), then evaluate on each test world.
                if [ -f "$out/latest" ]; then
                    train="$rims rl train --device cpu --resume $out"
                else
                    train="$rims rl train --device cpu ${table[$name]} --seed $seed --out $out"
                fi
                evals=""
                for world in ${tests[$grid]}; do
                    evals+=" && $rims rl eval --device cpu --checkpoint $out --env $world --episodes 500 --json"
                done
                commands+=("$train && { true$evals; } > $out/eval.jsonl.tmp && mv $out/eval.jsonl.tmp $out/eval.jsonl")
                continue
            fi
            # A checkpoint: latest names it (train.json directly in the directory: older runs).
            if [ -f "$out/latest" ] || [ -f "$out/train.json" ]; then
                # Resume: flags come from the checkpoint; a finished run trains no further.
                commands+=("RIMS_THREADS=1 $rims train --device cpu --resume $out")
            else
                commands+=("RIMS_THREADS=1 $rims train --device cpu ${table[$name]} --seed $seed --out $out")
            fi
        done
    done
done

if [ $list = 1 ]; then
    printf '%s\n' "${commands[@]}"
    exit 0
fi
[ -x "$rims" ] || { echo "experiments.sh: $rims not built (cargo build --release)" >&2; exit 1; }
mkdir -p "$runs"
mkdir -p "$runs/logs"
# Each run's output goes to DIR/logs/NAME.log, so that DIR/NAME-* globs only run directories.
printf '%s\n' "${commands[@]}" | xargs -P "$jobs" -I{} bash -c '
    out=$(echo "{}" | sed -E "s/.*--(out|resume) ([^ ]+).*/\2/; s/ .*//")
    log="$(dirname "$out")/logs/$(basename "$out").log"
    echo "start $out"
    if ( {} ) >> "$log" 2>&1; then echo "done  $out"; else echo "FAILED $out (see $log)"; fi
'
