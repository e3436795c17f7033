#!/usr/bin/env bash
# Held-out and robustness evaluation of a student model with kdbet itself.
# Usage: scripts/evaluate-default-model.sh [BUILD_DIR] [OUT_DIR] [MODEL] [EXTRACT_OPTIONS]
# Rows: the held-out IXI subjects at 2 mm as stored; IXI015 resampled to 1 mm,
# 1x1x3 mm, and with permuted and flipped axes; the SPM avg152 T1/T2/PD
# templates (2 mm, another scanner population) against their brain mask; the
# clinical out-of-domain scans of lesjak-ms-dev (T1w, T2w, FLAIR; validation
# only, never trained on) against the dataset's masks; and synthetic heads
# painted from the held-out SynthSeg label maps (training_seg_16 to 20, other
# subjects than any trained on) in four contrasts at 1 mm and two with 5 mm
# slices, against their exact 1 mm masks. Means per group at the end.
# EXTRACT_OPTIONS (one word list, e.g. "--mirror") go to every kdbet extract.
# Writes OUT_DIR/evaluation.md (and the masks) and prints it. KDBET_EVALUATE
# (a space-separated list of ixi, avg152, lesjak, synthseg) picks the groups.
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
paint=$build/bin/KDBrainExtractionPaintLabelMap
groups=${KDBET_EVALUATE:-ixi avg152 lesjak synthseg}
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
  if [[ " $groups " == *" ixi "* ]]; then
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
  fi
  if [[ " $groups " == *" avg152 "* ]]; then
    for contrast in T1 T2 PD; do
      row "avg152${contrast}" "$shared/spm-avg152/avg152${contrast}.nii.gz" "$shared/spm-avg152/brainmask.nii.gz"
    done
  fi
  if [[ " $groups " == *" lesjak "* ]]; then
    for image in "$shared"/lesjak-ms-dev/images/*.nii.gz; do
      name=$(basename "$image" .nii.gz)
      row "lesjak_$name" "$image" "$shared/lesjak-ms-dev/brainmask/${name}_brainmask.nii.gz"
    done
  fi
  if [[ " $groups " == *" synthseg "* ]]; then
    # Fixed seeds: the same heads for every model evaluated.
    for number in 16 17 18 19 20; do
      labels=$shared/synthseg-head-labels/training_seg_$number.nii.gz
      for contrast in t1w t2w pdw flair; do
        name=synthseg${number}_$contrast
        "$paint" "$labels" "$contrast" "$number" "$out/$name.nii.gz" "$out/${name}_reference.nii.gz"
        row "${name}_1mm" "$out/$name.nii.gz" "$out/${name}_reference.nii.gz"
      done
      # 5 mm slices: axial (the maps' second axis runs inferior) for T1w, sagittal for FLAIR.
      for variant in "t1w 1 5 1" "flair 5 1 1"; do
        set -- $variant
        name=synthseg${number}_$1
        "$resample" "$out/$name.nii.gz" "$out/${name}_$2x$3x$4mm.nii.gz" "$2" "$3" "$4" > /dev/null
        "$resample" "$out/${name}_reference.nii.gz" "$out/${name}_$2x$3x$4mm_reference.nii.gz" "$2" "$3" "$4" 012 000 nearest > /dev/null
        row "${name}_$2x$3x$4mm" "$out/${name}_$2x$3x$4mm.nii.gz" "$out/${name}_$2x$3x$4mm_reference.nii.gz"
      done
    done
  fi
} | tee "$out/evaluation.md"
# Means per group: IXI held-out 2 mm, lesjak per contrast, SynthSeg per contrast and grid.
{
  echo
  echo "| group | mean Dice | lowest | n |"
  echo "|---|---|---|---|"
  awk -F'|' '/^\| (IXI[^ ]*_2mm|lesjak_|synthseg)/ {
      name = $2; gsub(/ /, "", name); group = name
      if (name ~ /^IXI/) group = "IXI held-out 2 mm"
      else if (name ~ /^lesjak_/) { sub(/^lesjak_patient[0-9]+_study[0-9]+_/, "", group); group = "lesjak " group }
      else { sub(/^synthseg[0-9]+_/, "", group); group = "SynthSeg held-out " group }
      sum[group] += $3; count[group]++; if (!(group in low) || $3 < low[group]) low[group] = $3
    } END {
      for (group in sum) printf "| %s | %.4f | %.4f | %d |\n", group, sum[group] / count[group], low[group], count[group]
    }' "$out/evaluation.md" | sort
} | tee -a "$out/evaluation.md"
