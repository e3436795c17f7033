#!/usr/bin/env bash
# Trains the default models shipped in Data/Models/ with the project's own
# trainer: the teacher on real T1w, then the student distilled from it; then
# both fine-tuned with half of the samples replaced by synthetic T1w-, T2w-,
# PDw-like and random contrasts painted from the DLMUSE labels (the student
# distilled from the fine-tuned teacher); then the fine-tuned student's
# batch-norm statistics are re-estimated over 200 batches (weights unchanged).
# Last, that student is fine-tuned twice more (seeds 7 and 8) with half of the
# remaining real samples shown in random intensity remappings, the two
# results' weights are averaged, and the average's batch-norm statistics are
# re-estimated. Last, for scanners, ages and contrasts not in IXI, the teacher
# and that student are fine-tuned with other subjects' whole-head label maps
# painted in random contrasts (FLAIR among them), aged anatomy, cut fields of
# view, nonlinear deformations and thicker slabs; the fine-tuned student's
# weights are averaged with those it started from and its batch-norm
# statistics re-estimated: the shipped pair. Last, the fine stage's refiner of
# that student's boundary, on heads painted at 1 mm from label maps.
# Usage:
#   scripts/train-default-models.sh [BUILD_DIR] [WORK_DIR] [TIME_LIMIT_S]
# Re-running resumes from the checkpoints in WORK_DIR (default:
# BUILD_DIR/default-training). With TIME_LIMIT_S, each run stops there with a
# checkpoint (exit code 3). At the end the shipped pair and the eight
# training logs are copied into Data/Models/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
work=${2:-$build/default-training}
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
synthetic=(--synthetic 0.5 --lr 5e-4)
[ -f "$work/kdbet_teacher_synthetic.kdbm" ] ||
  run --role teacher --width 16 --steps 300 --initialize "$work/kdbet_teacher.kdbm" "${synthetic[@]}" "${common[@]}" \
    --checkpoint "$work/teacher_synthetic.ckpt" --log "$work/teacher_synthetic.training-log.jsonl" \
    --output "$work/kdbet_teacher_synthetic.kdbm"
[ -f "$work/kdbet_student_synthetic.kdbm" ] ||
  run --role student --width 8 --steps 2000 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_synthetic.kdbm" \
    --initialize "$work/kdbet_student.kdbm" "${synthetic[@]}" "${common[@]}" \
    --checkpoint "$work/student_synthetic.ckpt" --log "$work/student_synthetic.training-log.jsonl" \
    --output "$work/kdbet_student_synthetic.kdbm"
# Batch norm's running statistics are moving averages that follow the last ~10
# batches of two patches, real or synthetic, whatever contrast those were;
# plain averages over 200 batches of the same mix serve every contrast alike.
[ -f "$work/kdbet_student_recalibrated.kdbm" ] ||
  run --role student --width 8 --steps 0 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_synthetic.kdbm" \
    --initialize "$work/kdbet_student_synthetic.kdbm" "${synthetic[@]}" "${common[@]}" --bn-recalibration 200 \
    --output "$work/kdbet_student_recalibrated.kdbm"
# Random contrasts on real anatomy: the other half of the samples, real T1w
# heads, is shown half the time through a random intensity curve. Two seeds,
# weights averaged: a single run's avg152 T2w Dice moves by about 0.004 with
# the seed, the average removes that choice.
remap=(--synthetic 0.5 --remap-intensities 0.5 --lr 5e-4)
for seed in 7 8; do
  [ -f "$work/kdbet_student_remap_seed$seed.kdbm" ] ||
    run --role student --width 8 --steps 600 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_synthetic.kdbm" \
      --initialize "$work/kdbet_student_recalibrated.kdbm" "${remap[@]}" "${common[@]}" --seed "$seed" \
      --average-last 600 --bn-recalibration 200 --checkpoint "$work/student_remap_seed$seed.ckpt" \
      --log "$work/student_remap_seed$seed.training-log.jsonl" --output "$work/kdbet_student_remap_seed$seed.kdbm"
done # (the later --seed overrides the one in common)
[ -f "$work/kdbet_student_remap_average.kdbm" ] ||
  "$build/bin/kdbet" average --output "$work/kdbet_student_remap_average.kdbm" \
    "$work/kdbet_student_remap_seed7.kdbm" "$work/kdbet_student_remap_seed8.kdbm"
[ -f "$work/kdbet_student_remap_recalibrated.kdbm" ] ||
  run --role student --width 8 --steps 0 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_synthetic.kdbm" \
    --initialize "$work/kdbet_student_remap_average.kdbm" "${remap[@]}" "${common[@]}" --bn-recalibration 200 \
    --output "$work/kdbet_student_remap_recalibrated.kdbm"
# Other subjects, sites and ages (issue 28): 15 whole-head label maps of
# SynthSeg's training set (16-20 are held out for evaluation), painted in
# random contrasts including FLAIR, weighted to about a third of the samples;
# aged anatomy, cut fields of view, nonlinear deformation and slabs up to 7 mm.
maps=$(printf "${KDBET_SHARED_DATA:-$here/../shared/data}/synthseg-head-labels/training_seg_%02d.nii.gz," $(seq 1 15))
domain=(--synthetic 0.5 --remap-intensities 0.5 --lr 5e-4 --label-maps "${maps%,}" --label-map-repeat 6
        --synthetic-contrasts t1w,t2w,pdw,flair,random --atrophy 0.3 --crop-fov 0.2 --deform 4 --max-slab 3.5)
[ -f "$work/kdbet_teacher_domain.kdbm" ] ||
  run --role teacher --width 16 --steps 300 --initialize "$work/kdbet_teacher_synthetic.kdbm" "${domain[@]}" "${common[@]}" \
    --checkpoint "$work/teacher_domain.ckpt" --log "$work/teacher_domain.training-log.jsonl" \
    --output "$work/kdbet_teacher_domain.kdbm"
[ -f "$work/kdbet_student_domain.kdbm" ] ||
  run --role student --width 8 --steps 1500 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_domain.kdbm" \
    --initialize "$work/kdbet_student_remap_recalibrated.kdbm" "${domain[@]}" "${common[@]}" \
    --average-last 750 --bn-recalibration 200 --checkpoint "$work/student_domain.ckpt" \
    --log "$work/student_domain.training-log.jsonl" --output "$work/kdbet_student_domain.kdbm"
# The fine-tuned student alone lost 0.0015 Dice on held-out IXI; the mean of
# its weights and its starting point's keeps most of the gain elsewhere and
# the IXI accuracy (Data/Models/README.md).
[ -f "$work/kdbet_student_domain_average.kdbm" ] ||
  "$build/bin/kdbet" average --output "$work/kdbet_student_domain_average.kdbm" \
    "$work/kdbet_student_remap_recalibrated.kdbm" "$work/kdbet_student_domain.kdbm"
[ -f "$work/kdbet_student_domain_recalibrated.kdbm" ] ||
  run --role student --width 8 --steps 0 --alpha 0.3 --distill image --teacher "$work/kdbet_teacher_domain.kdbm" \
    --initialize "$work/kdbet_student_domain_average.kdbm" "${domain[@]}" "${common[@]}" --bn-recalibration 200 \
    --output "$work/kdbet_student_domain_recalibrated.kdbm"
# The fine stage (issue 27): a refiner of that student's boundary at 1 mm,
# trained on heads painted from label maps 01-13 at their own resolution,
# where their masks are exact; 14-15 report the band error rates, 16-20 stay
# held out for evaluation. No checkpoint: the run is ~25 min on 2 cores.
labels=${KDBET_SHARED_DATA:-$here/../shared/data}/synthseg-head-labels
refiner_maps=$(printf "$labels/training_seg_%02d.nii.gz," $(seq 1 13))
[ -f "$work/kdbet_refiner.kdbm" ] ||
  run --role refiner --coarse-model "$work/kdbet_student_domain_recalibrated.kdbm" --label-maps "${refiner_maps%,}" \
    --validate-label-maps "$labels/training_seg_14.nii.gz,$labels/training_seg_15.nii.gz" --heads-per-map 8 \
    --points-per-head 20000 --depth 2 --width 64 --steps 6000 --batch 4096 --seed 7 --threads "$(nproc)" \
    --device cpu --log "$work/refiner.training-log.jsonl" --output "$work/kdbet_refiner.kdbm"
models=${KDBET_MODELS_DIR:-$here/Data/Models}
mkdir -p "$models/training-logs"
cp "$work/kdbet_teacher_domain.kdbm" "$models/kdbet_teacher.kdbm"
cp "$work/kdbet_student_domain_recalibrated.kdbm" "$models/kdbet_student.kdbm"
cp "$work/kdbet_refiner.kdbm" "$models/kdbet_refiner.kdbm"
for stage in teacher student teacher_synthetic student_synthetic student_remap_seed7 student_remap_seed8 \
  teacher_domain student_domain refiner; do
  cp "$work/$stage.training-log.jsonl" "$models/training-logs/$stage.jsonl"
done
echo "wrote $models/kdbet_teacher.kdbm, kdbet_student.kdbm and kdbet_refiner.kdbm; now run scripts/update-baselines.sh $build"
