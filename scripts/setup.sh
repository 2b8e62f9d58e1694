#!/usr/bin/env bash
# Sets up mmfusion on Debian 12: installs the Debian packages it needs (apt-get, as root
# or through sudo) when any is missing, then configures and builds a Release build in
# build/: the mmfusion executable, and with --tests the test suite too. Safe to run
# again: it installs nothing that is already there and rebuilds only what changed.
#   usage: scripts/setup.sh [--tests] [extra cmake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(--target mmfusion)
if [ "${1:-}" = "--tests" ]; then
  targets=()  # everything: the executable and the tests
  shift
fi

packages=(
  build-essential cmake ninja-build
  libtorch-dev            # LibTorch 1.13 (CPU)
  libcli11-dev nlohmann-json3-dev libspdlog-dev libgtest-dev
  libzip-dev pkg-config   # .npz data files (zip container)
  libgloo-dev             # headers of c10d's Gloo process group (multi-process training)
  libopenblas0-openmp     # fast BLAS: Debian's default reference BLAS is ~20x slower
  python3-torch           # Python side of the checkpoint/data-file interop tests
  python3-jsonschema      # the config JSON Schema checked by a second validator (tests)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "setup: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch links libblas.so.3; make sure it resolves to OpenBLAS, not the reference BLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) echo "setup: BLAS is $blas" ;;
  *) echo "setup: warning: libblas.so.3 is $blas, not OpenBLAS (matrix products will be slow);" \
          "fix with: update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2 ;;
esac

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)" "${targets[@]}"
if ((${#targets[@]})); then
  echo "setup: built build/mmfusion (scripts/setup.sh --tests builds the tests too)"
else
  echo "setup: built build/mmfusion and build/tests/mmfusion_tests"
fi
