#!/usr/bin/env bash
# Whole-command benchmark of kdbet extract, next to the peers in ../shared/peers.
# Usage: scripts/benchmark-extraction.sh [BUILD_DIR] [OUT_DIR] [SUBJECT] [REPEATS] [PEERS]
#   PEERS: space-separated peer names of ../shared/peers (default "deepbrain"; "" for none).
# For a 2 mm IXI head and the same head resampled to 1 mm (and to 1x1x3 mm), it
# records wall time and peak RSS of the whole command (median of REPEATS runs),
# the seconds of each stage (kdbet extract --timings), and Dice against the
# reference mask; then runs the peers on the same inputs. Writes
# OUT_DIR/benchmark.tsv and OUT_DIR/benchmark.md. Run it on an otherwise idle machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
out=${2:-$build/benchmark}
subject=${3:-IXI015-HH-1258}
repeats=${4:-3}
peers=${5-deepbrain}
data=${KDBET_SHARED_DATA:-$here/../shared/data}/ixi-hh-t1-2mm
peerdir=${KDBET_PEERS:-$here/../shared/peers}
mkdir -p "$out"
kdbet=$build/bin/kdbet
resample=$build/bin/KDBrainExtractionResampleHead

# Inputs: the stored 2 mm head, and 1 mm and 1x1x3 mm versions (image linear, mask nearest).
cp "$data/t1/${subject}_T1.nii.gz" "$out/head_2mm.nii.gz"
cp "$data/brainmask/${subject}_brainmask.nii.gz" "$out/reference_2mm.nii.gz"
for grid in "1mm 1 1 1" "1x1x3mm 1 1 3"; do
  set -- $grid
  "$resample" "$out/head_2mm.nii.gz" "$out/head_$1.nii.gz" "$2" "$3" "$4" > /dev/null
  "$resample" "$out/reference_2mm.nii.gz" "$out/reference_$1.nii.gz" "$2" "$3" "$4" 012 000 nearest > /dev/null
done

printf "tool\tinput\twall_s\tpeak_rss_mb\tdice\tstages\n" > "$out/benchmark.tsv"
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for grid in 2mm 1mm 1x1x3mm; do
  walls=(); rss=(); stages=""
  for ((run = 0; run < repeats; ++run)); do
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$kdbet" extract -i "$out/head_$grid.nii.gz" \
      -m "$out/kdbet_mask_$grid.nii.gz" -o "$out/kdbet_brain_$grid.nii.gz" --timings > "$out/kdbet_$grid.log"
    read -r wall kb < "$out/time.txt"
    walls+=("$wall"); rss+=("$kb")
    stages=$(grep "^stage seconds" "$out/kdbet_$grid.log" | sed 's/^stage seconds [^:]*: //')
  done
  wall=$(printf "%s\n" "${walls[@]}" | median)
  mb=$(( $(printf "%s\n" "${rss[@]}" | median) / 1024 ))
  dice=$("$kdbet" evaluate "$out/kdbet_mask_$grid.nii.gz" "$out/reference_$grid.nii.gz" | awk '/^dice/ {print $2}')
  printf "kdbet\t%s\t%s\t%s\t%s\t%s\n" "$grid" "$wall" "$mb" "$dice" "$stages" | tee -a "$out/benchmark.tsv"
done
for peer in $peers; do
  for grid in 2mm 1mm; do
    "$peerdir/bench.sh" "$out/head_$grid.nii.gz" "$out/reference_$grid.nii.gz" "$out/peer_${peer}_$grid" "$peer" > /dev/null
    # A peer that failed (rc != 0) is reported as such, not with its time to fail.
    awk -F'\t' -v g="$grid" -v logfile="$out/peer_${peer}_$grid/$peer.log" 'NR == 2 {
      if ($2 != 0) printf "%s\t%s\tfailed (rc %s, see %s)\tNA\tNA\t\n", $1, g, $2, logfile
      else printf "%s\t%s\t%s\t%s\t%s\t\n", $1, g, $3, $4, $5}' \
      "$out/peer_${peer}_$grid/results.tsv" | tee -a "$out/benchmark.tsv"
  done
done

{
  echo "# kdbet extract benchmark ($subject, $(nproc) cores, $(date -u +%Y-%m-%d))"
  echo
  echo "| tool | input | wall (s) | peak RSS (MB) | Dice | stage seconds |"
  echo "|---|---|---|---|---|---|"
  tail -n +2 "$out/benchmark.tsv" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}'
} > "$out/benchmark.md"
cat "$out/benchmark.md"
