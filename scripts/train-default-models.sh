#!/usr/bin/env bash
# Trains the default models shipped in Data/Models/ with the project's own
# trainer: the teacher, then the student distilled from it. Usage:
#   scripts/train-default-models.sh [BUILD_DIR] [WORK_DIR] [TIME_LIMIT_S]
# Re-running resumes from the checkpoints in WORK_DIR (default:
# training-checkpoints/, kept in the repository between sessions until the
# final models land). With TIME_LIMIT_S, each run stops there with a checkpoint.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
work=${2:-$here/training-checkpoints}
limit=${3:-0}
data=${KDBET_SHARED_DATA:-$here/../shared/data}/ixi-hh-t1-2mm
mkdir -p "$work"
# Held out: the subjects the tests and the README demo run on.
heldout=IXI012-HH-1211,IXI013-HH-1212,IXI014-HH-1236,IXI015-HH-1258
common=(--manifest "$data/cases.csv" --validate "$heldout" --batch 2 --patch 48 --depth 3
        --seed 7 --threads "$(nproc)" --device cpu --checkpoint-every 50 --time-limit "$limit")

run() { # a time limit ends a run with exit code 3 and a checkpoint
  local status=0
  "$build/bin/kdbet" train "$@" || status=$?
  [ "$status" -eq 0 ] || { [ "$status" -eq 3 ] && echo "time limit: run again to resume"; exit "$status"; }
}
[ -f "$work/kdbet_teacher.kdbm" ] ||
  run --role teacher --width 16 --steps 1000 "${common[@]}" \
    --checkpoint "$work/teacher.ckpt" --log "$work/teacher.training-log.jsonl" --output "$work/kdbet_teacher.kdbm"
[ -f "$work/kdbet_student.kdbm" ] ||
  run --role student --width 8 --steps 2500 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher.kdbm" \
    "${common[@]}" --checkpoint "$work/student.ckpt" --log "$work/student.training-log.jsonl" \
    --output "$work/kdbet_student.kdbm"
echo "trained: $work/kdbet_teacher.kdbm $work/kdbet_student.kdbm"
