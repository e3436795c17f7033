#!/usr/bin/env bash
# The paper's experiment on the shared IXI data with kdbet protocol: five random
# subject-level 80/20 splits; per split a teacher, the plain UNet++ (a = 0) and
# the distilled student (a = 0.3, the teacher's brain image), evaluated on the
# split's held-out subjects. Usage:
#   scripts/run-paper-protocol.sh [BUILD_DIR] [WORK_DIR] [TIME_LIMIT_S]
# Long on 2 CPU cores (about 1.5 hours per split): re-running resumes. Finished
# splits keep only split-N/evaluations.csv (their models may be deleted), so
# the work folder can be carried between machines. With TIME_LIMIT_S each
# model's training stops there with a checkpoint (exit code 3).
# The step counts are shorter than the shipped models' (1000 teacher and 2500
# student steps) so that the five splits fit in a few CPU-hour sessions.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
work=${2:-$here/protocol-checkpoints}
limit=${3:-0}
data=${KDBET_SHARED_DATA:-$here/../shared/data}/ixi-hh-t1-2mm
"$build/bin/kdbet" protocol --manifest "$data/cases.csv" --output-dir "$work" \
  --splits 5 --train-fraction 0.8 --seed 7 --variants unetpp-baseline,kd-image --alpha 0.3 \
  --teacher-steps 500 --student-steps 1500 --batch 2 --patch 48 --depth 3 \
  --threads "$(nproc)" --device cpu --checkpoint-every 50 --time-limit "$limit"
