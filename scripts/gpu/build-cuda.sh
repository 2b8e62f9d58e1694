#!/usr/bin/env bash
# Builds mmfusion against the CUDA LibTorch that ships inside a Python torch install
# (as on a GPU machine with PyTorch but no package access).
# Usage: build-cuda.sh DEBS_DIR SOURCE_DIR BUILD_DIR [extra cmake args...]
#   DEBS_DIR   .deb files from fetch-deps.sh
# After it: export LD_LIBRARY_PATH as printed, then run BUILD_DIR's binaries and ctest.
set -euo pipefail
debs=${1:?usage: build-cuda.sh DEBS_DIR SOURCE_DIR BUILD_DIR}
src=${2:?source dir}
build=${3:?build dir}
shift 3
prefix=${MMFUSION_DEPS_PREFIX:-/opt/mmfusion-deps}
mkdir -p "$prefix"
for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())'
export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# We compile no CUDA sources; naming the architecture keeps Torch's CMake from probing.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
lib="$prefix/usr/lib/x86_64-linux-gnu/cmake"
share="$prefix/usr/share/cmake"
# Each package's config folder is named explicitly: CMake finds the multiarch folders
# under a prefix only when the compiler reports the Debian architecture triplet.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr" \
  -Dfmt_DIR="$lib/fmt" -Dspdlog_DIR="$lib/spdlog" -DGTest_DIR="$lib/GTest" \
  -DCLI11_DIR="$share/CLI11" -Dnlohmann_json_DIR="$share/nlohmann_json" "$@"
cmake --build "$build" -j "$(nproc)"
echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
