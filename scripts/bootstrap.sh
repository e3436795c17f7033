#!/usr/bin/env bash
# The README's first command: install dependencies, build (Release) into
# build/, and skull-strip a bundled IXI sample with the default model.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/install-dependencies.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
# The bundled sample: an IXI T1w head (held out from training), resolved by
# CMake ExternalData from its content link in Data/Input.
sample=build/ExternalData/Data/Input/IXI012-HH-1211_T1.nii.gz
mkdir -p build/demo
build/bin/kdbet extract -i "$sample" -o build/demo/IXI012_brain.nii.gz -m build/demo/IXI012_mask.nii.gz \
  -p build/demo/IXI012_probability.nii.gz
echo "Demo outputs are in $here/build/demo/ (brain, mask, probability on the input's grid)."
