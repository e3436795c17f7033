#!/usr/bin/env bash
# Regenerates the regression baselines from the shipped models: runs the
# regression tests, stores their outputs in Data/ObjectStore (content-addressed)
# and points the content links in Data/Baseline at them. Run after a model in
# Data/Models changes, then review and commit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
cd "$build"
cmake --build . -j "$(nproc)"
ctest -R "itkKD.*IXI" >/dev/null || true   # the --compare against the old baselines may fail
for link in "$here"/Data/Baseline/*.sha512; do
  name=$(basename "$link" .sha512)
  output="$build/Testing/Temporary/$name"
  [ -f "$output" ] || { echo "no test output $output" >&2; exit 1; }
  hash=$(sha512sum "$output" | cut -d' ' -f1)
  mkdir -p "$here/Data/ObjectStore/SHA512"
  cp "$output" "$here/Data/ObjectStore/SHA512/$hash"
  printf '%s' "$hash" > "$link"
  echo "$name -> $hash"
done
# Objects no content link names any more.
for object in "$here"/Data/ObjectStore/SHA512/*; do
  grep -qr "$(basename "$object")" "$here/Data/Baseline" || rm -v "$object"
done
