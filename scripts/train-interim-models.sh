#!/usr/bin/env bash
# Reproduces the interim default models in Data/Models/ (small networks, a
# short CPU run) with the project's own trainer. Usage:
#   scripts/train-interim-models.sh [BUILD_DIR] [WORK_DIR]
# Re-running resumes from the checkpoints in WORK_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
work=${2:-$here/build/interim-training}
data=${KDBET_SHARED_DATA:-$here/../shared/data}/ixi-hh-t1-2mm
mkdir -p "$work"
# Held out: the subjects the tests and the README demo run on.
heldout=IXI012-HH-1211,IXI013-HH-1212,IXI014-HH-1236,IXI015-HH-1258
common=(--manifest "$data/cases.csv" --validate "$heldout" --batch 2 --patch 48 --depth 3 --width 8
        --seed 1 --threads 2 --device cpu --checkpoint-every 50)

"$build/bin/kdbet" train --role teacher --steps 300 "${common[@]}" \
  --checkpoint "$work/teacher.ckpt" --log "$work/teacher.jsonl" --output "$work/kdbet_teacher.kdbm"
# The interim student is the plain UNet++ (--alpha 0): a teacher trained for
# 300 CPU steps is too weak to distil from (validation MAE ~0.2).
"$build/bin/kdbet" train --role student --steps 1500 --alpha 0 "${common[@]}" \
  --checkpoint "$work/student.ckpt" --log "$work/student.jsonl" --output "$work/kdbet_student.kdbm"
cp "$work/kdbet_teacher.kdbm" "$work/kdbet_student.kdbm" "$here/Data/Models/"
