#!/usr/bin/env bash
# Integration test of the Slurm path on one machine: starts munge and a
# one-node Slurm cluster (slurmctld + slurmd on localhost, its own
# configuration and state under WORK), makes a BIDS study of SUBJECTS
# participants (2 scans each, scripts/make-bids-study.py), submits it with
# submit-bids.sh, waits for the array and the group level, and checks every
# derivative (scripts/check-bids-derivatives.py) and the group summary.
# Needs root (munged, slurmd) and Debian's slurm-wlm and munge (installed
# here if missing). Not part of .ci/run: it starts system daemons.
#
#   [KDBET_PARTICIPANTS_PER_TASK=N] scripts/slurm/test-local-cluster.sh BUILD_DIR [SUBJECTS] [WORK]
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR [SUBJECTS] [WORK]}" && pwd)
subjects=${2:-10}
work=${3:-/tmp/kdbet-slurm-test}
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: needs root (it starts munged, slurmctld and slurmd)" >&2
  exit 2
fi
for package in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
done

rm -rf "$work"
mkdir -p "$work"/{state,spool,log}
chown -R slurm:slurm "$work/state" "$work/log" 2>/dev/null || true
host=$(hostname -s)
cpus=$(nproc)
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048))
conf=$work/slurm.conf
cat >"$conf" <<CONF
ClusterName=kdbet-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf

cleanup() {
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
  [ -n "${munge_pid:-}" ] && kill "$munge_pid" 2>/dev/null || true
}
trap cleanup EXIT

# munge: a key if there is none, the daemon if it is not running.
if ! munge -n >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  su -s /bin/sh munge -c "/usr/sbin/munged --force" && munge_pid=$(pgrep -u munge -n munged)
fi
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 60); do
  sinfo -h -o '%T' 2>/dev/null | grep -q '^idle' && break
  sleep 1
done
sinfo

study=$work/study
output=$work/derivatives
/usr/bin/python3 "$here/scripts/make-bids-study.py" --build "$build" --output "$study" --subjects "$subjects"
start=$SECONDS
export KDBET="$build/bin/kdbet"
export KDBET_MODEL_DIR=${KDBET_MODEL_DIR:-$here/Data/Models}
submitted=$("$here/scripts/slurm/submit-bids.sh" "$study" "$output")
echo "$submitted"
group_job=${submitted##* }
# Done when the group job has left the queue.
while squeue -h -j "$group_job" 2>/dev/null | grep -q .; do
  sleep 2
done
wall=$((SECONDS - start))
group_log=$(ls "$output"/logs/slurm-*-group.log)
cat "$group_log"

status=0
grep -q "^kdbet bids group: $((2 * subjects)) of $((2 * subjects)) scans have their derivatives; $((2 * subjects)) summary rows (0 failed)" \
  "$group_log" || { echo "FAIL: the group level did not find every scan done" >&2; status=1; }
/usr/bin/python3 "$here/scripts/check-bids-derivatives.py" "$output" --raw "$study" || status=1
tasks=$(ls "$output"/logs/slurm-*_*.log | wc -l)
per_task=${KDBET_PARTICIPANTS_PER_TASK:-1}
expected_tasks=$(((subjects + per_task - 1) / per_task))
[ "$tasks" -eq "$expected_tasks" ] || { echo "FAIL: $tasks task logs, expected $expected_tasks" >&2; status=1; }
rows=$(($(wc -l <"$output/logs/kdbet_group_summary.csv") - 1))
seconds=$(awk -F, 'NR > 1 {s += $4} END {printf "%.1f", s}' "$output/logs/kdbet_group_summary.csv")
echo "wall time ${wall} s for $rows scans in $tasks array tasks; summed seconds per scan ${seconds} s"
# Per task: the scans it did and its seconds from start to end of kdbet bids
# (models loaded once per task, included).
total_task_seconds=0
for log in "$output"/logs/slurm-*_*.log; do
  line=$(grep '^kdbet bids: .* scans done' "$log" || true)
  seconds=$(sed -n 's/.* in \([0-9.]*\) s; derivatives.*/\1/p' <<<"$line")
  echo "  $(basename "$log"): $(grep -c ': ok, ' "$log") scans ok in ${seconds:-?} s"
  total_task_seconds=$(awk -v a="$total_task_seconds" -v b="${seconds:-0}" 'BEGIN {print a + b}')
done
awk -v s="$total_task_seconds" -v n="$rows" -v t="$tasks" \
  'BEGIN {printf "throughput: %.1f s per task on average, %.2f s per scan inside tasks\n", s / t, s / n}'
[ $status -eq 0 ] && echo "PASS: Slurm array over $subjects participants" || echo "FAIL" >&2
exit $status
