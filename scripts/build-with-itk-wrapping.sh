#!/usr/bin/env bash
# Builds the module the way ITK remote modules are built, and its ITK Python wrapping:
#   1. ITK 5.2.1 from Debian's own source package (apt-get source insighttoolkit5), with only
#      the modules KDBrainExtraction and its tests need, ITK_WRAP_PYTHON=ON for float and
#      unsigned char 3D images, the system's swig and castxml;
#   2. this module against that ITK build tree through ITK's ITKModuleExternal.cmake (C++ library,
#      its tests, and its wrapping), then its C++ tests;
#   3. the Python tests in wrapping/test/ against the wrapped build.
# It takes about an hour and a half on 2 cores the first time (see the README); it is not part of
# .ci/run. A second run reuses the work folder (and ccache).
#
# Usage: scripts/build-with-itk-wrapping.sh [WORK_DIR]   (default: build-itk-wrapping/)
set -euo pipefail

source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work_dir="$(mkdir -p "${1:-${source_dir}/build-itk-wrapping}" && cd "${1:-${source_dir}/build-itk-wrapping}" && pwd)"
jobs="${KDBET_BUILD_JOBS:-$(nproc)}"
itk_source="${work_dir}/itk-src"
itk_build="${work_dir}/itk-build"
module_build="${work_dir}/module-build"
python="/usr/bin/python3"
started=$(date +%s)
stage() { printf '\n== %s (%d s)\n' "$*" $(($(date +%s) - started)); }

stage "Dependencies"
"${source_dir}/scripts/install-dependencies.sh"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
wrapping_packages=(swig castxml ccache dpkg-dev libgdcm-dev)
missing=()
for package in "${wrapping_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ! -e /etc/apt/sources.list.d/kdbet-debian-src.sources ] && ! grep -rqs '^Types: deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # Debian's own ITK source: the same release as libinsighttoolkit5-dev, with its Wrapping/.
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
    $sudo tee /etc/apt/sources.list.d/kdbet-debian-src.sources >/dev/null
  $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stage "ITK source"
if [ ! -f "${itk_source}/CMakeLists.txt" ]; then
  (cd "${work_dir}" && apt-get source --download-only -qq insighttoolkit5 &&
    dpkg-source -x insighttoolkit5_*.dsc itk-src >/dev/null)
fi
grep -m1 'set(ITK_VERSION_' "${itk_source}/CMake/itkVersion.cmake" >/dev/null
# ITK 5.2.1's Python support names np.bool, which NumPy 1.24 (Debian
# bookworm's) removed; ITK 5.3 names np.bool_, as here.
# (Only once: a newer file makes ITK configure again, which relinks everything.)
itk_python_types="${itk_source}/Wrapping/Generators/Python/itk/support/types.py"
if grep -q 'np\.bool)' "${itk_python_types}"; then
  sed -i 's/np\.bool)/np.bool_)/' "${itk_python_types}"
fi

# ITK's modules for the module's DEPENDS and TEST_DEPENDS (itk-module.cmake), plus the image IO
# that itk.imread needs for the test data, and ITKBridgeNumPy: itk.array_from_image and the
# other NumPy views (itk.PyBuffer), which a default ITK build has and ITK_BUILD_DEFAULT_MODULES=OFF
# leaves out.
modules=$(sed -n '/itk_module(KDBrainExtraction/,/EXCLUDE_FROM_DEFAULT/p' "${source_dir}/itk-module.cmake" |
  grep -o 'ITK[A-Za-z0-9]*' | sort -u)
modules="${modules} ITKBridgeNumPy"
module_flags=()
for module in ${modules}; do
  module_flags+=("-DModule_${module}=ON")
done

stage "Configure ITK (${itk_build})"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
itk_configure=(-S "${itk_source}" -B "${itk_build}" -G "Unix Makefiles" "${launcher[@]}"
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DBUILD_TESTING=OFF
  -DBUILD_EXAMPLES=OFF
  -DITK_BUILD_DEFAULT_MODULES=OFF
  "${module_flags[@]}"
  -DITK_USE_SYSTEM_ZLIB=ON -DITK_USE_SYSTEM_PNG=ON -DITK_USE_SYSTEM_EIGEN=ON
  -DITK_USE_SYSTEM_GOOGLETEST=ON -DGTEST_ROOT=/usr
  # Debian's LibTorch loads OpenCV, which loads Debian's GDCM; ITK's own copy of GDCM (pulled in
  # by ITKTestKernel) has the same symbols, and with both in one process their static objects
  # are freed twice at exit (every test program aborted: "malloc_consolidate(): unaligned
  # fastbin chunk detected", seen with valgrind). One GDCM, Debian's, for both.
  -DITK_USE_SYSTEM_GDCM=ON
  -DITK_WRAP_PYTHON=ON
  -DITK_USE_SYSTEM_SWIG=ON -DSWIG_EXECUTABLE=/usr/bin/swig
  -DITK_USE_SYSTEM_CASTXML=ON -DCASTXML_EXECUTABLE=/usr/bin/castxml
  -DPython3_EXECUTABLE="${python}"
  -DITK_WRAP_IMAGE_DIMS=3
  -DITK_WRAP_float=ON -DITK_WRAP_unsigned_char=ON
  -DITK_WRAP_unsigned_short=OFF -DITK_WRAP_signed_short=OFF -DITK_WRAP_double=OFF
  -DITK_WRAP_vector_float=ON -DITK_WRAP_covariant_vector_float=ON # ITK's wrapping needs a vector type
  -DITK_WRAP_rgb_unsigned_char=OFF -DITK_WRAP_rgba_unsigned_char=OFF -DITK_WRAP_complex_float=OFF)
# ITK's configuration stamps its date into ITKCommon, so configuring again
# relinks every library and wrapping module (20 minutes on 2 cores): only
# when the arguments changed.
itk_configure_stamp="${itk_build}/kdbet-configure-arguments.txt"
if [ -f "${itk_build}/CMakeCache.txt" ] && [ -f "${itk_configure_stamp}" ] &&
  [ "$(printf '%s\n' "${itk_configure[@]}")" = "$(cat "${itk_configure_stamp}")" ]; then
  echo "(configured before with the same arguments)"
else
  cmake "${itk_configure[@]}" > "${work_dir}/itk-configure.log"
  printf '%s\n' "${itk_configure[@]}" > "${itk_configure_stamp}"
fi

stage "Build ITK with Python wrapping (${jobs} jobs; log: ${work_dir}/itk-build.log)"
cmake --build "${itk_build}" -j "${jobs}" > "${work_dir}/itk-build.log" 2>&1 ||
  { tail -40 "${work_dir}/itk-build.log"; exit 1; }

stage "Configure the module against the ITK build tree (ITKModuleExternal)"
cmake -S "${source_dir}" -B "${module_build}" -G "Unix Makefiles" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DITK_DIR="${itk_build}" \
  -DBUILD_TESTING=ON \
  -DKDBrainExtraction_BUILD_APPS=ON \
  -DKDBrainExtraction_BUILD_PYTHON=OFF \
  -DPython3_EXECUTABLE="${python}" \
  -DITK_USE_KWSTYLE=OFF -DITK_USE_CLANG_FORMAT=OFF `# both would be downloaded` \
  -DITK_USE_SYSTEM_SWIG=ON -DSWIG_EXECUTABLE=/usr/bin/swig \
  -DITK_USE_SYSTEM_CASTXML=ON -DCASTXML_EXECUTABLE=/usr/bin/castxml \
  -DExternalData_OBJECT_STORES="${source_dir}/../shared/ExternalData;${source_dir}/Data/ObjectStore" \
  > "${work_dir}/module-configure.log"

stage "Build the module, its tests and its wrapping (log: ${work_dir}/module-build.log)"
cmake --build "${module_build}" -j "${jobs}" > "${work_dir}/module-build.log" 2>&1 ||
  { tail -40 "${work_dir}/module-build.log"; exit 1; }

stage "The module's C++ and wrapping tests"
(cd "${module_build}" && ctest -j "${jobs}" --output-on-failure)

stage "Python: an ITK pipeline with the wrapped filters"
PYTHONPATH="${itk_build}/Wrapping/Generators/Python" \
  KDBET_EXECUTABLE="$(find "${module_build}" "${itk_build}/Wrapping/Generators/Python/itk" -name kdbet -type f | head -1)" \
  KDBET_TEST_HEAD="$(find "${module_build}/ExternalData" -name 'IXI012-HH-1211_T1.nii.gz' | head -1)" \
  KDBET_TEST_MASK="$(find "${module_build}/ExternalData" -name 'IXI012-HH-1211_brainmask.nii.gz' | head -1)" \
  "${python}" -m pytest -q -p no:cacheprovider "${source_dir}/wrapping/test"

stage "Done"
