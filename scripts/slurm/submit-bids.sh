#!/usr/bin/env bash
# Submits kdbet bids over a BIDS dataset to Slurm: the participant-level array
# (kdbet-bids-array.sbatch) and, after it, the group level, which checks that
# every scan has its derivatives and merges the summaries
# (OUTPUT_DIR/logs/kdbet_group_summary.csv).
#
#   scripts/slurm/submit-bids.sh BIDS_DIR OUTPUT_DIR [kdbet bids options]
#
# Environment: KDBET (the executable, default kdbet on PATH),
# KDBET_PARTICIPANTS_PER_TASK (default 1), KDBET_MAX_TASKS (tasks at once,
# default unlimited), KDBET_SBATCH_OPTIONS (more sbatch options, e.g.
# "--partition=cpu --cpus-per-task=8"). Prints the two job ids.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BIDS_DIR OUTPUT_DIR [kdbet bids options]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
bids=$(cd "$1" && pwd)
mkdir -p "$2/logs"
output=$(cd "$2" && pwd)
shift 2
per_task=${KDBET_PARTICIPANTS_PER_TASK:-1}
count=$(find "$bids" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' | wc -l)
if [ "$count" -eq 0 ]; then
  echo "$bids: no sub-* folders" >&2
  exit 2
fi
tasks=$(((count + per_task - 1) / per_task))
array="1-$tasks${KDBET_MAX_TASKS:+%$KDBET_MAX_TASKS}"
# shellcheck disable=SC2086 # KDBET_SBATCH_OPTIONS is a list of options
array_job=$(sbatch --parsable --export=ALL --array="$array" --output="$output/logs/slurm-%A_%a.log" \
  ${KDBET_SBATCH_OPTIONS:-} "$here/kdbet-bids-array.sbatch" "$bids" "$output" "$@")
extra="" # --suffix etc.: the group level checks the same scans
[ $# -eq 0 ] || extra=$(printf ' %q' "$@")
# shellcheck disable=SC2086
group_job=$(sbatch --parsable --export=ALL --dependency="afterany:${array_job%%;*}" --job-name=kdbet-bids-group \
  --output="$output/logs/slurm-%j-group.log" ${KDBET_SBATCH_OPTIONS:-} \
  --wrap "$(printf '%q' "${KDBET:-kdbet}") bids $(printf '%q %q' "$bids" "$output") group$extra")
echo "participants: $count in $tasks array tasks, job $array_job; group level: job $group_job"
