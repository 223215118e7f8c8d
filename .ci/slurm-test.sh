#!/usr/bin/env bash
# CI test of tools/experiments.sh --slurm on a real single-node Slurm cluster (Debian's munge,
# slurmctld and slurmd, bound to 127.0.0.1) started here and stopped at the end:
#
#   - bad input: --slurm without sbatch, --max-parallel 0 / not a number / without --slurm;
#   - a 4-task array of tiny runs (the smoke grid, seeds 1 and 2) with --max-parallel 2: never
#     more than 2 tasks running, every task exit 0 (its task-N.exit marker and Slurm's record)
#     with its final checkpoint;
#   - one task requeued (scontrol requeue) part way through: it resumes its run directory and
#     ends with the same parameters, optimizer state and records as the same command run here
#     without interruption;
#   - the same grid submitted again: every task finds its run finished and exits 0 at once,
#     leaving the checkpoints unchanged; rims summary reads the runs;
#   - a data-parallel run (tools/slurm/train-mpi.sbatch, 2 tasks as MPI ranks; needs the MPI
#     build that .ci/mpi-test.sh leaves in target/mpi-bin, required under CI=true) requeued part
#     way through ends equal to the same run uninterrupted.
#
# Everything lives in one directory (RIMS_SLURM_TEST_DIR, default /tmp/rims-slurm-test); what a
# previous run there left (daemons, jobs, state) is stopped and removed first. Every process the
# test starts carries RIMS_SLURM_TEST_TAG=DIR in its environment; those are the processes it
# stops. The daemons run as root (directly, or through sudo); the jobs as the caller.
# Ports: RIMS_SLURM_TEST_PORT and the next one (default 16817, 16818). Run from anywhere.

# `check && check || fail "..."` is meant: fail when either check does.
# shellcheck disable=SC2015
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=.ci/common.sh
. .ci/common.sh

W=${RIMS_SLURM_TEST_DIR:-/tmp/rims-slurm-test}
case "$W" in /*) ;; *) W="$repo/$W" ;; esac
W=${W%/}
case "$W" in "" | "$repo" | "$HOME" | /tmp) echo "slurm-test: not a test directory: '$W'" >&2; exit 2 ;; esac
# W and the daemons' directories in it are root's (munged refuses a log or key under a directory
# another user owns); U, the runs and everything else the caller and the jobs write, the caller's.
U="$W/work"
port=${RIMS_SLURM_TEST_PORT:-16817}
start=$SECONDS
# Every wait below has its own limit; this one bounds the whole test (seconds).
deadline=$((SECONDS + ${RIMS_SLURM_TEST_LIMIT:-420}))

say() { echo "slurm-test [$((SECONDS - start)) s]: $*"; }

# The last lines of every log, for a failure's diagnosis.
dump_logs() {
    local f
    for f in "$W"/log/*.log "$W"/log/jobcomp.txt "$U"/runs/slurm/*/task-*.log "$U"/ref.log; do
        [ -f "$f" ] || continue
        echo "----- $f (last 25 lines)"
        as_root tail -n 25 "$f" || true
    done
}

fail() {
    echo "slurm-test: FAILED: $*" >&2
    dump_logs >&2
    exit 1
}

# Pids of the processes a run of this test started (daemons, job steps, jobs): those whose
# environment carries the tag. Never this shell or its parents.
tagged_pids() {
    # shellcheck disable=SC2016 # the inner script's variables are its own
    as_root bash -c '
        tag="RIMS_SLURM_TEST_TAG=$1"; shift
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            for keep in "$@"; do [ "$pid" = "$keep" ] && continue 2; done
            { tr "\0" "\n" < "$p/environ"; } 2>/dev/null | grep -Fxq -- "$tag" && echo "$pid"
        done
        true' _ "$W" $$ "$PPID" "${BASHPID:-$$}"
}

# Stops what a run of this test started: SIGTERM, then SIGKILL to what is left after 5 s
# (slurmstepd ignores SIGTERM).
stop_all() {
    local pids
    pids=$(tagged_pids)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # a list of pids
    as_root kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 10); do
        sleep 0.5
        pids=$(tagged_pids)
        [ -n "$pids" ] || return 0
    done
    # shellcheck disable=SC2086
    as_root kill -KILL $pids 2>/dev/null || true
    sleep 0.5
}

cleanup() {
    local rc=$?
    trap - EXIT
    say "stopping the daemons and any job left"
    stop_all || true
    [ $rc -eq 0 ] || echo "slurm-test: exit $rc; state and logs kept in $W" >&2
    exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Runs a condition until it holds or LIMIT seconds pass: wait_for LIMIT WHAT CMD...
wait_for() {
    local limit=$1 what=$2
    shift 2
    local until=$((SECONDS + limit))
    [ $until -le $deadline ] || until=$deadline
    until "$@"; do
        [ $SECONDS -lt $until ] || fail "timed out after $limit s waiting for $what"
        sleep 0.2
    done
}

# Whether two run directories hold the same final checkpoint: its set's name, every tensor
# and the metadata of the model and the optimizer, and every record but its timing.
same_run() {
    python3 - "$1" "$2" <<'EOF'
# Every tensor and the metadata of the final model and optimizer, and every record but its
# timing, equal. (The files' bytes may differ: the metadata's order is not fixed.)
import json, re, struct, sys

def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    return meta, {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
                  for k, v in header.items()}

a, b = sys.argv[1], sys.argv[2]
latest = lambda d: open(f"{d}/latest").read().strip()
if latest(a) != latest(b):
    print(f"checkpoints {latest(a)} and {latest(b)}", file=sys.stderr)
    sys.exit(1)
for name in ["model", "optimizer"]:
    ta, tb = (tensors(f"{d}/{latest(d)}/{name}.safetensors") for d in (a, b))
    if ta != tb:
        print(f"{name}.safetensors differs", file=sys.stderr)
        sys.exit(1)
    print(f"  {name}.safetensors: {len(ta[1])} tensors equal")
strip = lambda d: [re.sub(r'"seconds":[^,]*,', "", l) for l in open(f"{d}/metrics.jsonl")]
if strip(a) != strip(b):
    print("metrics.jsonl differs", file=sys.stderr)
    sys.exit(1)
print(f"  metrics.jsonl: {len(strip(a))} records equal")
EOF
}

# --- packages ---------------------------------------------------------------------------------
need=()
for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian's munge, slurmctld, slurmd, slurm-client (missing: ${need[*]})"
    apt_install munge slurmctld slurmd slurm-client || fail "could not install Slurm's packages"
fi
command -v python3 >/dev/null 2>&1 || fail "python3 is needed to compare checkpoints"

# The binary the grid runs: CI's test stage (`cargo test --release`) has just built it.
rims="$repo/target/release/rims"
if [ ! -x "$rims" ] && command -v cargo >/dev/null 2>&1; then
    timeout 3600 cargo build --release --quiet --bin rims
fi
[ -x "$rims" ] || fail "$rims not built (cargo build --release)"

# --- a fresh single-node cluster ----------------------------------------------------------------
say "clearing what an earlier run left in $W"
stop_all
as_root rm -rf "$W"
as_root mkdir -p "$W/munge" "$W/state" "$W/spool" "$W/log" "$W/etc" "$U"
as_root chmod 755 "$W" "$W/munge" "$W/etc" "$W/log"
as_root chown "$(id -u):$(id -g)" "$U"
mkdir -p "$U/runs"

# Munge: a key of our own and a socket of our own, beside any system munged.
if command -v mungekey >/dev/null 2>&1; then
    as_root mungekey --create --bits 1024 --keyfile "$W/munge/munge.key"
else
    as_root dd if=/dev/urandom of="$W/munge/munge.key" bs=128 count=1 status=none
fi
as_root chmod 600 "$W/munge/munge.key"
as_root env RIMS_SLURM_TEST_TAG="$W" munged --socket="$W/munge/socket" \
    --key-file="$W/munge/munge.key" --pid-file="$W/munge/munged.pid" \
    --seed-file="$W/munge/munged.seed" --log-file="$W/log/munged.log" \
    || fail "munged did not start"
wait_for 10 "munged's socket" test -S "$W/munge/socket"

# No cgroups (containers), no accounting database: exit codes come from the tasks' markers and
# slurmctld's job records (kept an hour: MinJobAge). cred_expire is how long a requeued job
# waits before it may start again (default 120 s).
as_root tee "$W/etc/slurm.conf" > /dev/null <<EOF
ClusterName=rims-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge/socket,cred_expire=10
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/state/slurmctld.pid
SlurmdPidFile=$W/spool/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$W/log/jobcomp.txt
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
MessageTimeout=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2048 State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$W/etc/slurm.conf"

say "starting slurmctld and slurmd (Slurm $(sbatch --version | awk '{print $2}'), ports $port, $((port + 1)))"
as_root env RIMS_SLURM_TEST_TAG="$W" SLURM_CONF="$SLURM_CONF" slurmctld -f "$SLURM_CONF" \
    || fail "slurmctld did not start"
as_root env RIMS_SLURM_TEST_TAG="$W" SLURM_CONF="$SLURM_CONF" slurmd -f "$SLURM_CONF" -N localhost \
    || fail "slurmd did not start"
node_idle() { [ "$(timeout 10 sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }
wait_for 60 "the node to be idle (is port $port free?)" node_idle

# --- bad input ------------------------------------------------------------------------------------
say "bad input is refused"
out="$U/bad.out"
expect_refusal() { # expect_refusal CODE TEXT ARGS...: experiments.sh exits CODE saying TEXT
    local code=$1 text=$2 rc=0
    shift 2
    timeout 60 tools/experiments.sh "$@" > "$out" 2>&1 || rc=$?
    [ $rc -eq "$code" ] || fail "experiments.sh $* exited $rc, not $code: $(cat "$out")"
    grep -qF -- "$text" "$out" || fail "experiments.sh $* did not say '$text': $(cat "$out")"
}
expect_refusal 2 "whole number of 1 or more, not '0'" --slurm --max-parallel 0 --runs "$U/runs" smoke
expect_refusal 2 "whole number of 1 or more, not 'two'" --slurm --max-parallel two --runs "$U/runs" smoke
expect_refusal 2 "whole number of 1 or more, not '-1'" --slurm --max-parallel -1 --runs "$U/runs" smoke
expect_refusal 2 "--max-parallel needs a value" --slurm --runs "$U/runs" smoke --max-parallel
expect_refusal 2 "go with --slurm" --max-parallel 2 --runs "$U/runs" smoke
# A PATH with what the script uses but no sbatch.
mkdir -p "$U/nosbatch"
for cmd in bash env dirname realpath sort grep sed cat date mkdir printf timeout; do
    p=$(command -v "$cmd" || true)
    case "$p" in /*) ln -sf "$p" "$U/nosbatch/$cmd" ;; esac
done
rc=0
PATH="$U/nosbatch" timeout 60 tools/experiments.sh --slurm --runs "$U/runs" smoke > "$out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "needs Slurm's sbatch" "$out" \
    || fail "--slurm without sbatch: exit $rc, $(cat "$out")"
[ ! -e "$U/runs/slurm" ] || fail "a refused submission left $U/runs/slurm"
[ -z "$(timeout 10 squeue -h)" ] || fail "a refused submission reached the queue"

# --- a grid of 4 tiny runs, 2 at a time, one of them requeued ------------------------------------
say "submitting the smoke grid, seeds 1 2, --max-parallel 2"
job=$(RIMS_SLURM_TEST_TAG="$W" timeout 60 tools/experiments.sh --slurm --max-parallel 2 --mem 256M --time 10 \
    --seeds "1 2" --runs "$U/runs" smoke) || fail "submission failed"
[[ $job =~ ^[0-9]+$ ]] || fail "experiments.sh --slurm printed '$job', not a job id"
sub=$(dirname "$(grep -lx "$job" "$U"/runs/slurm/*/job-id)")
[ "$(wc -l < "$sub/commands.txt")" -eq 4 ] || fail "$sub/commands.txt has not 4 lines"
show=$(timeout 10 scontrol show job "$job") || fail "scontrol show job $job failed"
grep -q "ArrayTaskThrottle=2" <<< "$show" || fail "job $job is not throttled to 2 tasks: $show"

# The same command as task 1 (smoke-rims-s1), here and uninterrupted, for the comparison.
target=1
dir=$(sed -n "$((target + 1))p" "$sub/runs.txt")
[ "$(basename "$dir")" = smoke-rims-s1 ] || fail "task $target runs $dir, not smoke-rims-s1"
ref_cmd=$(tools/experiments.sh --list --seeds 1 --runs "$U/ref" smoke | grep -- '--out [^ ]*/smoke-rims-s1$')
RIMS_SLURM_TEST_TAG="$W" bash -c "$ref_cmd" > "$U/ref.log" 2>&1 &
ref_pid=$!

# Requeue the task once it has a checkpoint and is still training.
most=0
running() { timeout 10 squeue -h -r -j "$job" -t RUNNING -o %K 2>/dev/null | wc -l; }
target_mid_run() {
    local n
    n=$(running)
    [ "$n" -le "$most" ] || most=$n
    [ -f "$dir/latest" ] && [ -n "$(timeout 10 squeue -h -r -j "${job}_$target" -t RUNNING -o %K)" ]
}
wait_for 90 "task $target to be running with a checkpoint" target_mid_run
at=$(cat "$dir/latest")
timeout 20 scontrol requeue "${job}_$target" || fail "scontrol requeue ${job}_$target failed"
say "requeued task $target at its checkpoint $at"
[ "$at" != epoch-000030 ] || fail "task $target had finished before the requeue (machine too fast?)"

# Wait for every task to end: each leaves task-N.exit when its last attempt ends.
all_ended() {
    local n
    n=$(running)
    [ "$n" -le "$most" ] || most=$n
    [ -z "$(timeout 10 squeue -h -r -j "$job" -o %K 2>/dev/null)" ] \
        && [ "$(find "$sub" -name 'task-*.exit' | wc -l)" -eq 4 ]
}
wait_for 240 "the 4 tasks to end" all_ended
say "all 4 tasks ended; at most $most ran at once"
[ "$most" -le 2 ] || fail "$most tasks ran at once under --max-parallel 2"

# --- checks ---------------------------------------------------------------------------------------
tools/slurm/status.sh "$sub" || fail "status.sh: not every task done"
records=$(timeout 20 scontrol show job "$job" -o) || fail "no job records for $job"
for t in 0 1 2 3; do
    [ "$(cat "$sub/task-$t.exit")" = 0 ] || fail "task $t exited $(cat "$sub/task-$t.exit")"
    rec=$(grep -E "ArrayTaskId=$t " <<< "$records") || fail "no record of task $t"
    grep -q "JobState=COMPLETED" <<< "$rec" && grep -q "ExitCode=0:0" <<< "$rec" \
        || fail "Slurm's record of task $t: $rec"
    d=$(sed -n "$((t + 1))p" "$sub/runs.txt")
    [ "$(cat "$d/latest")" = epoch-000030 ] && [ -f "$d/epoch-000030/model.safetensors" ] \
        || fail "$d lacks its final checkpoint (latest: $(cat "$d/latest" 2>/dev/null))"
done
grep -E "ArrayTaskId=$target " <<< "$records" | grep -q "Restarts=1" \
    || fail "Slurm does not count task $target's requeue"
log="$sub/task-$target.log"
grep -q "attempt 2" "$log" && grep -q "holds a checkpoint (epoch-.*): resuming it" "$log" \
    || fail "task $target's log shows no second attempt resuming its run"
grep -q "interrupted by SIGTERM" "$log" || fail "task $target's first attempt was not stopped by SIGTERM"

wait "$ref_pid" || fail "the uninterrupted reference run failed (see $U/ref.log)"
say "comparing the requeued run with the uninterrupted one"
same_run "$dir" "$U/ref/smoke-rims-s1" || fail "the requeued run differs from the uninterrupted one"

timeout 60 "$rims" summary "$U"/runs/smoke-* > "$U/summary.txt" 2>&1 \
    || fail "rims summary failed: $(cat "$U/summary.txt")"
for cfg in smoke-lstm smoke-rims; do
    grep -q "^| $cfg | 2 | [0-9]* | 15000 ± 0 |" "$U/summary.txt" \
        || fail "rims summary did not pool 2 seeds of $cfg at step 15000: $(cat "$U/summary.txt")"
done

# --- the same grid again: every run is finished, every task exits at once ---------------------------
say "submitting the same grid again"
before=$(cd "$U/runs" && find smoke-* -type f -not -name '.rims.lock' | sort | xargs md5sum)
job2=$(RIMS_SLURM_TEST_TAG="$W" timeout 60 tools/experiments.sh --slurm --max-parallel 2 --mem 256M --time 10 \
    --seeds "1 2" --runs "$U/runs" smoke) || fail "second submission failed"
sub2=$(dirname "$(grep -lx "$job2" "$U"/runs/slurm/*/job-id)")
t0=$SECONDS
again_ended() {
    [ -z "$(timeout 10 squeue -h -r -j "$job2" -o %K 2>/dev/null)" ] \
        && [ "$(find "$sub2" -name 'task-*.exit' | wc -l)" -eq 4 ]
}
wait_for 120 "the second submission's tasks to end" again_ended
tools/slurm/status.sh "$sub2" || fail "the second submission failed"
for t in 0 1 2 3; do
    grep -q "holds a checkpoint (epoch-000030): resuming it" "$sub2/task-$t.log" \
        && grep -q "nothing to do" "$sub2/task-$t.log" \
        || fail "task $t of the second submission did not find its run finished"
done
after=$(cd "$U/runs" && find smoke-* -type f -not -name '.rims.lock' | sort | xargs md5sum)
[ "$before" = "$after" ] || fail "the second submission changed the finished runs"
say "second submission: 4 finished runs left as they were, in $((SECONDS - t0)) s"

# --- one data-parallel run: a job of 2 tasks (MPI ranks), requeued ---------------------------------
mpi_rims="$repo/target/mpi-bin/rims"
if [ ! -x "$mpi_rims" ]; then
    [ "${CI:-}" != true ] || fail "no MPI build at $mpi_rims: CI's mpi stage builds it first"
    say "skipping the data-parallel job: no MPI build at $mpi_rims (bash .ci/mpi-test.sh makes one)"
else
    say "submitting a data-parallel run: tools/slurm/train-mpi.sbatch, 2 tasks"
    DP=(--device cpu --mechanisms 3 --active 2 --hidden 16 --embed 8 --batch 8 --symbols 5
        --train-len 4 --test-len 8 --eval-every 1 --dropout 0 --carry --lr-schedule constant
        --iterations 300 --epochs 6)
    dp="$U/dp"
    dpjob=$(RIMS_SLURM_TEST_TAG="$W" RIMS_LAUNCHER="${RIMS_LAUNCHER:-}" RIMS="$mpi_rims" RIMS_REPO="$repo" timeout 60 sbatch --parsable \
        --ntasks=2 --cpus-per-task=1 --mem-per-cpu=256M --time=10 --output="$U/dp.log" \
        tools/slurm/train-mpi.sbatch "$dp" "${DP[@]}") || fail "sbatch train-mpi.sbatch failed"
    # The same run, here and uninterrupted, for the comparison.
    RIMS_SLURM_TEST_TAG="$W" RIMS_THREADS=1 timeout 300 mpiexec -n 2 "$mpi_rims" train --dist mpi \
        --out "$U/dp-ref" "${DP[@]}" > "$U/dp-ref.log" 2>&1 &
    dp_ref=$!
    dp_mid_run() { [ -f "$dp/latest" ] && [ -n "$(timeout 10 squeue -h -j "$dpjob" -t RUNNING -o %i)" ]; }
    wait_for 90 "the data-parallel job to be running with a checkpoint" dp_mid_run
    at=$(cat "$dp/latest")
    timeout 20 scontrol requeue "$dpjob" || fail "scontrol requeue $dpjob failed"
    say "requeued the data-parallel job at its checkpoint $at"
    [ "$at" != epoch-000006 ] || fail "the data-parallel job had finished before the requeue"
    dp_ended() { [ -z "$(timeout 10 squeue -h -j "$dpjob" -o %i 2>/dev/null)" ]; }
    wait_for 180 "the data-parallel job to end" dp_ended
    rec=$(timeout 20 scontrol show job "$dpjob" -o) || fail "no job record for $dpjob"
    grep -q "JobState=COMPLETED" <<< "$rec" && grep -q "ExitCode=0:0" <<< "$rec" \
        && grep -q "Restarts=1" <<< "$rec" || fail "Slurm's record of the data-parallel job: $rec"
    grep -q "attempt 2, 2 ranks" "$U/dp.log" && grep -q "holds a checkpoint (epoch-.*): resuming it" "$U/dp.log" \
        || fail "the data-parallel job's log shows no second attempt resuming its run: $(cat "$U/dp.log")"
    grep -q "interrupted by SIGTERM" "$U/dp.log" \
        || fail "the data-parallel job's first attempt was not stopped by SIGTERM: $(cat "$U/dp.log")"
    wait "$dp_ref" || fail "the uninterrupted data-parallel run failed: $(tail -3 "$U/dp-ref.log")"
    same_run "$dp" "$U/dp-ref" || fail "the requeued data-parallel run differs from the uninterrupted one"
    say "the requeued data-parallel job ended as the uninterrupted run did"
fi

say "passed"
