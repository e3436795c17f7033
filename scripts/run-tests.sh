#!/usr/bin/env bash
# The README's second command: the whole test suite (unit and regression tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
[ -d build ] || { echo "No build/ folder: run scripts/bootstrap.sh first." >&2; exit 2; }
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j "$(nproc)"
