#!/usr/bin/env bash
# `semiseg grid submit` against a real Slurm: configures and starts a single-node cluster on this machine (munged,
# slurmctld and slurmd from Debian's munge and slurm-wlm, private sockets, ports and state in a temporary folder),
# submits a 2 methods x 2 seeds grid of tiny phantom runs, requeues one task mid-run (`scontrol requeue`: Slurm sends
# SIGTERM, SemiSeg saves last.ckpt, the task is requeued) and waits until every run is done; then checks that the
# requeued run resumed from its last.ckpt and that `grid status` reports 4 done.
# Usage: tests/slurm/grid-on-slurm.sh [SEMISEG-COMMAND]   (default: dotnet src/SemiSeg.Cli/bin/Release/net10.0/SemiSeg.Cli.dll)
# Exit 0 = passed, 1 = failed, 77 = skipped (the reason is printed: not root, Slurm or munge missing, daemons would not start).
# Needs: root (slurmd runs jobs as the submitting user and must be able to), slurm-wlm, munge.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
semiseg="${1:-dotnet $root/src/SemiSeg.Cli/bin/Release/net10.0/SemiSeg.Cli.dll}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; dump; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root to run slurmd (this is uid $(id -u))"
for b in munged slurmctld slurmd sbatch squeue scontrol sinfo; do command -v "$b" >/dev/null || skip "$b not found (apt-get install slurm-wlm munge)"; done

T="$(mktemp -d /tmp/semiseg-slurm.XXXXXX)"
host="$(hostname -s)"
# free ports for this cluster only, so a real Slurm on the machine is not disturbed
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
ctlport=$(port); dport=$(port)
mkdir -p "$T/state" "$T/spool" "$T/munge" "$T/work"
cleanup() {
  for p in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/munged.pid"; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  sleep 1
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
dump() {
  echo "--- slurmctld.log (tail)"; tail -n 20 "$T/slurmctld.log" 2>/dev/null
  echo "--- slurmd.log (tail)"; tail -n 20 "$T/slurmd.log" 2>/dev/null
  echo "--- grid logs"; for f in "$T"/work/runs/.grid/logs/*; do echo "== $f"; tail -n 15 "$f"; done 2>/dev/null
}

# munge: a private key and socket
dd if=/dev/urandom of="$T/munge/munge.key" bs=1 count=1024 status=none; chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/munge.sock" --pid-file="$T/munge/munged.pid" \
  --log-file="$T/munge/munged.log" --seed-file="$T/munge/munged.seed" || skip "munged would not start: $(tail -n 3 "$T/munge/munged.log" 2>/dev/null)"

mem=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)
cat > "$T/slurm.conf" <<EOF
ClusterName=semiseg-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctlport
SlurmdPort=$dport
AuthType=auth/munge
AuthInfo=socket=$T/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=60
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -f "$T/slurm.conf" -i || skip "slurmctld would not start: $(tail -n 3 "$T/slurmctld.log" 2>/dev/null)"
slurmd -f "$T/slurm.conf" || skip "slurmd would not start: $(tail -n 3 "$T/slurmd.log" 2>/dev/null)"
for i in $(seq 60); do sinfo -h -o '%t' 2>/dev/null | grep -qE '^idle' && break; sleep 1; done
sinfo -h -o '%t' | grep -qE '^idle' || skip "the node did not come up idle: $(sinfo 2>&1 | tail -n 2) $(tail -n 3 "$T/slurmd.log")"
echo "single-node Slurm up: $(sinfo -h -o '%P %a %D %t %c cpus')"

cd "$T/work"
$semiseg phantom cardiac -o phantom > /dev/null || fail "phantom"
cat > grid.yaml <<'EOF'
data: phantom
output: runs
methods: [supervised, mean-teacher]
labeled: [2]
seeds: [1, 2]
train: {iterations: 120, patch-size: 64, batch-size: 4, labeled-bs: 2, val-every: 60, save-every: 10, log-every: 10, workers: 1}
params:
  mean-teacher: {rampup: 1}
EOF
$semiseg grid submit grid.yaml --cpus-per-task 1 --time 30:00 --semiseg "$semiseg" || fail "grid submit"
job=$(cut -d' ' -f1 runs/.grid/slurm-jobs.txt | tail -n 1)
echo "submitted job array $job"

# requeue task 0 once it has saved a checkpoint and is mid-run
for i in $(seq 300); do
  st=$(squeue -h -j "${job}_0" -o '%T' 2>/dev/null)
  it=$(grep -oE '\] it [0-9]+' runs/supervised-2-s1/train.log 2>/dev/null | tail -n 1 | grep -oE '[0-9]+$')
  [ "$st" = RUNNING ] && [ -f runs/supervised-2-s1/last.ckpt ] && [ "${it:-0}" -ge 20 ] && [ "${it:-0}" -lt 100 ] && break
  sleep 1
done
[ "${it:-0}" -ge 20 ] || fail "task 0 never got to iteration 20 while running (state '$st')"
echo "requeueing ${job}_0 at iteration $it"
scontrol requeue "${job}_0" || fail "scontrol requeue"

for i in $(seq 900); do
  left=$(squeue -h -j "$job" -o '%i' 2>/dev/null | wc -l)
  [ "$left" -eq 0 ] && break
  sleep 2
done
[ "$left" -eq 0 ] || fail "jobs still queued after 30 min: $(squeue -j "$job")"

echo "--- semiseg grid status"
$semiseg grid status grid.yaml | tee status.txt
echo "--- the requeued run"
grep -hE 'resumed from|interrupted at' runs/supervised-2-s1/train.log
grep -hE 'restart|requeue' runs/.grid/logs/slurm-"${job}"_0.log
grep -q '^4 done' status.txt || fail "not every run is done"
grep -q 'resumed from .*last.ckpt at iteration' runs/supervised-2-s1/train.log || fail "the requeued run did not resume from last.ckpt"
grep -q 'restart 1' runs/.grid/logs/slurm-"${job}"_0.log || fail "task 0 did not run a second time"
$semiseg report runs | tail -n 8

# `grid cancel`: the running task saves last.ckpt and is NOT requeued
cat > cancel.yaml <<'EOF'
data: phantom
output: runs-cancel
methods: [supervised]
labeled: [2]
seeds: [3]
train: {iterations: 5000, patch-size: 64, batch-size: 4, labeled-bs: 2, val-every: 1000, save-every: 10, log-every: 10, workers: 1}
EOF
$semiseg grid submit cancel.yaml --cpus-per-task 1 --semiseg "$semiseg" > /dev/null || fail "grid submit (cancel)"
cjob=$(cut -d' ' -f1 runs-cancel/.grid/slurm-jobs.txt | tail -n 1)
for i in $(seq 300); do [ -f runs-cancel/supervised-2-s3/last.ckpt ] && break; sleep 1; done
$semiseg grid cancel cancel.yaml || fail "grid cancel"
for i in $(seq 120); do [ "$(squeue -h -j "$cjob" -o '%i' 2>/dev/null | wc -l)" -eq 0 ] && break; sleep 1; done
sleep 5
[ "$(squeue -h -j "$cjob" -o '%i' 2>/dev/null | wc -l)" -eq 0 ] || fail "the cancelled job is back in the queue: $(squeue -j "$cjob")"
$semiseg grid status cancel.yaml | tee cstatus.txt
grep -q '^1 interrupted' cstatus.txt || fail "the cancelled run is not left interrupted (resumable)"
echo "PASS: 4 runs done on Slurm, ${job}_0 requeued at iteration $it and resumed; cancelled job $cjob left its run resumable and was not requeued"
