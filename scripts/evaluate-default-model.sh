#!/usr/bin/env bash
# Held-out and robustness evaluation of a student model with kdbet itself.
# Usage: scripts/evaluate-default-model.sh [BUILD_DIR] [OUT_DIR] [MODEL] [EXTRACT_OPTIONS]
# Rows: the held-out IXI subjects at 2 mm as stored; IXI015 resampled to 1 mm,
# 1x1x3 mm, and with permuted and flipped axes; the SPM avg152 T1/T2/PD
# templates (2 mm, another scanner population) against their brain mask.
# EXTRACT_OPTIONS (one word list, e.g. "--mirror") go to every kdbet extract.
# Writes OUT_DIR/evaluation.md (and the masks) and prints it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
out=${2:-$build/evaluation}
model=${3:-$here/Data/Models/kdbet_student.kdbm}
read -r -a extract_options <<< "${4:-}"
shared=${KDBET_SHARED_DATA:-$here/../shared/data}
ixi=$shared/ixi-hh-t1-2mm
kdbet=$build/bin/kdbet
resample=$build/bin/KDBrainExtractionResampleHead
mkdir -p "$out"

row() { # NAME IMAGE REFERENCE
  "$kdbet" extract -i "$2" -m "$out/$1_mask.nii.gz" --model "$model" "${extract_options[@]}" > /dev/null
  "$kdbet" evaluate "$out/$1_mask.nii.gz" "$3" |
    awk -v n="$1" '{v[$1]=$2} END {printf "| %s | %.4f | %.4f | %.4f | %.2f | %.0f | %.0f |\n", n, v["dice:"], v["sensitivity:"], v["specificity:"], v["hd95_mm:"], v["predicted_ml:"], v["reference_ml:"]}'
}
{
  echo "Model: \`$(basename "$model")\`, checksum $("$kdbet" info "$model" | awk '/^checksum/ {print $NF}')${4:+, extract options: $4}"
  echo
  echo "| input | Dice | sensitivity | specificity | HD95 (mm) | brain (ml) | reference (ml) |"
  echo "|---|---|---|---|---|---|---|"
  for subject in IXI012-HH-1211 IXI013-HH-1212 IXI014-HH-1236 IXI015-HH-1258; do
    row "${subject}_2mm" "$ixi/t1/${subject}_T1.nii.gz" "$ixi/brainmask/${subject}_brainmask.nii.gz"
  done
  subject=IXI015-HH-1258
  for grid in "1mm 1 1 1 012 000" "1x1x3mm 1 1 3 012 000" "permuted-flipped 2 2 2 201 101"; do
    set -- $grid
    "$resample" "$ixi/t1/${subject}_T1.nii.gz" "$out/${subject}_$1.nii.gz" "$2" "$3" "$4" "$5" "$6" > /dev/null
    "$resample" "$ixi/brainmask/${subject}_brainmask.nii.gz" "$out/${subject}_$1_reference.nii.gz" "$2" "$3" "$4" "$5" "$6" nearest > /dev/null
    row "${subject}_$1" "$out/${subject}_$1.nii.gz" "$out/${subject}_$1_reference.nii.gz"
  done
  for contrast in T1 T2 PD; do
    row "avg152${contrast}" "$shared/spm-avg152/avg152${contrast}.nii.gz" "$shared/spm-avg152/brainmask.nii.gz"
  done
} | tee "$out/evaluation.md"
