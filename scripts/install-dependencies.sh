#!/usr/bin/env bash
# Installs the build and test dependencies from Debian bookworm's archive.
set -euo pipefail
packages=(build-essential cmake git ca-certificates pkg-config
  libinsighttoolkit5-dev libtorch-dev libeigen3-dev googletest libgtest-dev zlib1g-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev
  python3-dev pybind11-dev python3-numpy python3-scipy python3-pytest python3-nibabel python3-nipype)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "All dependencies are installed."
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
