#!/usr/bin/env bash
# CI stage `mpi`: data-parallel training over MPI on this one machine (loopback).
#
# Installs MPICH and libclang when missing (the `mpi` crate's mpi-sys runs bindgen), runs clippy
# on what the feature adds, builds `rims` with `--features mpi` (in the default target
# directory, so only the crate itself is compiled again; the binary is copied to target/mpi-bin/
# and the default one put back), then:
#   1. one process and `mpiexec -n 2` (and -n 4) train the same tiny run: parameters equal
#      within f32 tolerance after 20 steps (.ci/safetensors_close.py);
#   2. a 2-rank job with rank 1 killed (SIGKILL) after the first checkpoint ends at once, and
#      `rims train --resume` (one process, the default build) completes it with every epoch
#      recorded once and every step taken; a 2-rank job sent SIGTERM stops on every rank
#      after the same step (one error line) and resumes on 2 ranks;
#   2c. a run started from `--init DIR` where only rank 0 can read DIR;
#   3. bad input: `--dist mpi` in the default build and outside mpiexec, ranks started with
#      different flags or `--init`, a batch the ranks cannot share, the same `--mnist-dir`
#      holding other data on another rank: one error line, exit 1, no hang.
# Every mpiexec runs under `timeout`, so a hang fails the stage instead of stalling CI.
# Idempotent: everything it writes outside target/ goes to a temporary directory.
# `check && check || fail "..."` is meant: fail when either check does.
# shellcheck disable=SC2015
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=.ci/common.sh
. .ci/common.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# One thread per rank: 2 ranks on 2 cores (rims would pick that itself; said for the reader).
export RIMS_THREADS=1

libclang_found() {
    ldconfig -p 2>/dev/null | grep 'libclang' >/dev/null \
        || compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null
}

if ! command -v mpiexec >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1 || ! libclang_found; then
    echo "mpi: installing Debian's mpich, libmpich-dev, libclang-dev and clang"
    apt_install mpich libmpich-dev libclang-dev clang
fi
echo "mpi: $(mpiexec --version 2>&1 | grep -m1 -i 'version' || echo 'mpiexec')"

start=$SECONDS
# The code behind the feature: the lib's train::dist MPI transport, the bin, examples/allreduce.
cargo clippy --lib --bins --examples --features mpi -- -D warnings
cargo build --release --features mpi --bin rims
mkdir -p target/mpi-bin
cp target/release/rims target/mpi-bin/rims
cargo build --release --bin rims # the default build back in place (no compile: it is cached)
echo "mpi: built in $((SECONDS - start)) s"

MPI_RIMS="$PWD/target/mpi-bin/rims" # absolute: some ranks below start in other directories
RIMS=target/release/rims
MPIEXEC=(timeout -k 5 120 mpiexec)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rims-mpi-ci.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "mpi: FAILED: $*" >&2
    exit 1
}

# A tiny copying run, its state carried across batches, no dropout (each rank's masks would be
# keyed by its own rows' indices), checkpointed every epoch. SHORT is 20 steps: the ranks' sums
# round differently from one process's, and over hundreds of steps such differences grow as
# between any two runs (a top-k choice flips), so parameters are compared early. LONG is 1800
# steps, long enough to kill it mid-run.
TINY=(--device cpu --mechanisms 3 --active 2 --hidden 16 --embed 8 --batch 8 --symbols 5
    --train-len 4 --test-len 8 --eval-every 1 --dropout 0 --carry --lr-schedule constant)
SHORT=(--iterations 10 --epochs 2)
LONG=(--iterations 300 --epochs 6)

# Every epoch of 1..$2 recorded exactly once in $1/metrics.jsonl.
epochs_once() {
    python3 - "$1/metrics.jsonl" "$2" <<'EOF'
import json, sys
epochs = [json.loads(l)["epoch"] for l in open(sys.argv[1]) if l.strip()]
want = list(range(1, int(sys.argv[2]) + 1))
sys.exit(0 if epochs == want else f"epochs {epochs}, expected {want}")
EOF
}

# The last record of run directory $1 is at step $2.
last_step() {
    python3 - "$1/metrics.jsonl" "$2" <<'EOF'
import json, sys
step = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["step"]
sys.exit(0 if step == int(sys.argv[2]) else f"last record at step {step}, expected {sys.argv[2]}")
EOF
}

# The current checkpoint's parameters of two runs agree within f32 tolerance.
same_params() {
    python3 .ci/safetensors_close.py --atol 1e-5 --rtol 1e-4 \
        "$1/$(cat "$1/latest")/model.safetensors" "$2/$(cat "$2/latest")/model.safetensors"
}

# The pid of rank $2 of the job writing run directory $1 (from the rank's environment).
rank_pid() {
    local pid
    for pid in $(pgrep -f -- "--out $1" || true); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "PMI_RANK=$2"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Waits (at most 60 s) for the first checkpoint of run directory $1.
await_checkpoint() {
    for _ in $(seq 600); do
        [ -s "$1/metrics.jsonl" ] && return 0
        sleep 0.1
    done
    fail "no checkpoint in $1 after 60 s"
}

# Runs "$@" expecting failure: exit 1 (not a timeout), one `error:` line containing $NEEDLE.
NEEDLE=""
refused() {
    local rc=0 err="$WORK/err"
    "$@" >/dev/null 2>"$err" || rc=$?
    [ "$rc" -eq 1 ] || fail "$* exited $rc (1 expected; 124 is a hang): $(cat "$err")"
    [ "$(grep -c '^error:' "$err")" -eq 1 ] || fail "$*: not one error line: $(cat "$err")"
    grep -qF -- "$NEEDLE" "$err" || fail "$*: no '$NEEDLE' in: $(cat "$err")"
    echo "ok: $(grep '^error:' "$err")"
}

echo "== 1. one process and 2 or 4 ranks take the same steps"
"$RIMS" train "${TINY[@]}" "${SHORT[@]}" --out "$WORK/one" >/dev/null
epochs_once "$WORK/one" 2 || fail "the one-process run's records"
for p in 2 4; do
    "${MPIEXEC[@]}" -n "$p" "$MPI_RIMS" train --dist mpi "${TINY[@]}" "${SHORT[@]}" \
        --out "$WORK/ranks$p" >"$WORK/ranks$p.log" || fail "mpiexec -n $p: $(tail -3 "$WORK/ranks$p.log")"
    epochs_once "$WORK/ranks$p" 2 || fail "the $p-rank run's records"
    same_params "$WORK/ranks$p" "$WORK/one" || fail "$p ranks against one process"
done

echo "== 2. a rank killed mid-run ends the job; one process resumes it"
"${MPIEXEC[@]}" -n 2 "$MPI_RIMS" train --dist mpi "${TINY[@]}" "${LONG[@]}" --out "$WORK/killed" \
    >"$WORK/killed.log" 2>&1 &
job=$!
await_checkpoint "$WORK/killed"
# Both ranks frozen first, so the run cannot finish between the checks and the kill.
pid0="$(rank_pid "$WORK/killed" 0)" || fail "rank 0 not found (did the run end already?)"
pid="$(rank_pid "$WORK/killed" 1)" || fail "rank 1 not found (did the run end already?)"
kill -STOP "$pid0" "$pid"
kill -KILL "$pid"
kill -CONT "$pid0"
rc=0
wait "$job" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] \
    || fail "the job with a killed rank exited $rc (nonzero, not a timeout, expected)"
done_epochs=$(grep -c . "$WORK/killed/metrics.jsonl")
[ "$done_epochs" -lt 6 ] || fail "the run finished before rank 1 was killed"
echo "ok: killed rank 1 after $done_epochs epoch(s); mpiexec exited $rc"
timeout 120 "$RIMS" train --resume "$WORK/killed" >/dev/null || fail "resume on one process"
epochs_once "$WORK/killed" 6 || fail "the resumed run's records"
last_step "$WORK/killed" 1800 || fail "the resumed run's steps"

echo "== 2b. SIGTERM stops every rank after the same step; 2 ranks resume"
timeout -k 5 120 mpiexec -n 2 "$MPI_RIMS" train --dist mpi "${TINY[@]}" "${LONG[@]}" \
    --out "$WORK/term" >"$WORK/term.log" 2>&1 &
job=$!
await_checkpoint "$WORK/term"
launcher="$(pgrep -P "$job" mpiexec)" || fail "mpiexec not found (did the run end already?)"
kill -TERM "$launcher"
rc=0
wait "$job" || rc=$?
# (mpiexec's own exit code after a signal is its business: 0 or 1 were seen.)
[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "the job sent SIGTERM hung: $(tail -3 "$WORK/term.log")"
[ "$(grep -c '^error: .*interrupted by SIGTERM' "$WORK/term.log")" -eq 1 ] \
    || fail "no one-line SIGTERM message: $(cat "$WORK/term.log")"
echo "ok: $(grep '^error:' "$WORK/term.log")"
"${MPIEXEC[@]}" -n 2 "$MPI_RIMS" train --dist mpi --resume "$WORK/term" >/dev/null \
    || fail "resume on 2 ranks"
epochs_once "$WORK/term" 6 || fail "the SIGTERM run's records"
last_step "$WORK/term" 1800 || fail "the SIGTERM run's steps"

echo "== 2c. only rank 0 reads --init's run: rank 1 starts where that path does not exist"
mkdir -p "$WORK/w0" "$WORK/w1"
cp -r "$WORK/one" "$WORK/w0/pre"
"${MPIEXEC[@]}" -n 1 -wdir "$WORK/w0" "$MPI_RIMS" train --dist mpi "${TINY[@]}" "${SHORT[@]}" \
    --init pre --out "$WORK/init" : -n 1 -wdir "$WORK/w1" "$MPI_RIMS" train --dist mpi \
    "${TINY[@]}" "${SHORT[@]}" --init pre --out "$WORK/init" >"$WORK/init.log" 2>&1 \
    || fail "--init on 2 ranks: $(tail -3 "$WORK/init.log")"
epochs_once "$WORK/init" 2 || fail "the --init run's records"
echo "ok: a 2-rank run started from --init pre, which only rank 0's directory holds"

echo "== 3. bad input: one line, exit 1, no hang"
NEEDLE="this rims was built without MPI: cargo build --release --features mpi"
refused timeout 60 "$RIMS" train --dist mpi --out "$WORK/bad"
NEEDLE="run it as \`mpiexec -n P rims train --dist mpi"
# Every variable of LAUNCHER_VARS (src/train/dist/mod.rs) (this runner may itself sit in a job).
refused timeout 60 env -u PMI_RANK -u PMI_FD -u PMI_PORT -u PMIX_RANK -u OMPI_COMM_WORLD_SIZE \
    -u MPI_LOCALNRANKS "$MPI_RIMS" train --dist mpi --out "$WORK/bad"
NEEDLE="lr is 0.002 on rank 1 and 0.001 on rank 0"
refused "${MPIEXEC[@]}" -n 1 "$MPI_RIMS" train --dist mpi "${TINY[@]}" --lr 1e-3 \
    --out "$WORK/bad" : -n 1 "$MPI_RIMS" train --dist mpi "${TINY[@]}" --lr 2e-3 --out "$WORK/bad"
NEEDLE="7 rows do not split into 2 equal shards"
refused "${MPIEXEC[@]}" -n 2 "$MPI_RIMS" train --dist mpi --device cpu --batch 7 --out "$WORK/bad"
NEEDLE="rank 0 starts from --init pre and rank 1 from --init other"
refused "${MPIEXEC[@]}" -n 1 -wdir "$WORK/w0" "$MPI_RIMS" train --dist mpi "${TINY[@]}" \
    --init pre --out "$WORK/bad" : -n 1 -wdir "$WORK/w1" "$MPI_RIMS" train --dist mpi \
    "${TINY[@]}" --init other --out "$WORK/bad"
# The same --mnist-dir path holding other digits on rank 1 (every label moved by one).
mkdir -p "$WORK/w0/mnist" "$WORK/w1/mnist"
cp data/mnist/*.gz "$WORK/w0/mnist/"
cp data/mnist/*images*.gz "$WORK/w1/mnist/"
python3 - data/mnist/mnist-10k-labels-idx1-ubyte.gz "$WORK/w1/mnist/mnist-10k-labels-idx1-ubyte.gz" <<'EOF'
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read())
raw[8:] = bytes((b + 1) % 10 for b in raw[8:])  # after the idx1 header (magic, count)
gzip.open(sys.argv[2], "wb").write(bytes(raw))
EOF
SMNIST=(--device cpu --task smnist --mnist-dir mnist --limit 64 --batch 8 --epochs 1)
NEEDLE="the MNIST data (--mnist-dir) differs between the ranks"
refused "${MPIEXEC[@]}" -n 1 -wdir "$WORK/w0" "$MPI_RIMS" train --dist mpi "${SMNIST[@]}" \
    --out "$WORK/bad" : -n 1 -wdir "$WORK/w1" "$MPI_RIMS" train --dist mpi "${SMNIST[@]}" \
    --out "$WORK/bad"
[ ! -e "$WORK/bad" ] || fail "a refused run wrote $WORK/bad"
echo "mpi: all checks passed in $((SECONDS - start)) s"
