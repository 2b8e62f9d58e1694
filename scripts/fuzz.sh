#!/usr/bin/env bash
# Coverage-guided fuzzing of the file readers with clang's libFuzzer and AddressSanitizer:
# tests/fuzz/fuzz_data_file.cpp (data files, built as fuzz_data_file for .pt and fuzz_npz for .npz),
# tests/fuzz/fuzz_checkpoint.cpp (checkpoints) and tests/fuzz/fuzz_pickle.cpp (the field's
# pickles: the restricted reader and the three layouts), all targets at once, each for SECONDS.
#   usage: scripts/fuzz.sh [SECONDS (default 600)] [OUT (default build-fuzz/out)] [TARGET...]
# (TARGETs: data_file npz checkpoint pickle; default all.) The pickle target starts from
# tests/fixtures/fuzz/pickle-corpus/ (committed, minimised) and the pickles that
# tests/pickle_fixtures.py writes.
# Needs the Release build (scripts/setup.sh) for the seed files and Debian's clang
# (installed here when missing). Leaves, per target, OUT/<target>.log (libFuzzer's output,
# with its final stats), OUT/<target>-corpus/ and any crash-* / oom-* / timeout-* input in
# OUT/<target>-artifacts/; prints a summary line per target. Exit 1 if any target found a
# crash. LibTorch itself is Debian's uninstrumented build: the fuzzer's coverage is that
# of mmfusion's code, while crashes anywhere (LibTorch's unpickler and zip reader too) are
# caught as signals and, in mmfusion's code, as AddressSanitizer reports.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
out=${2:-build-fuzz/out}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(data_file npz checkpoint pickle)
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q --no-install-recommends clang libclang-rt-dev
fi
[ -x build/mmfusion ] || ./scripts/setup.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
      -DMMFUSION_FUZZ=ON -DMMFUSION_BUILD_TESTS=OFF > /dev/null
cmake --build build-fuzz -j "$(nproc)"

# Seeds: a small data file (regression and classification) and a checkpoint, written by
# mmfusion itself.
mkdir -p "$out"
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds/data" "$seeds/npz" "$seeds/checkpoint" "$seeds/pickle"
./build/mmfusion synth --config configs/tiny.json --set data.train_size=8 --output "$seeds/data/regression.pt" 2>/dev/null
./build/mmfusion synth --config configs/tiny.json --set data.train_size=8 --set task=classification \
  --set num_classes=3 --output "$seeds/data/classes.pt" 2>/dev/null
./build/mmfusion train --config configs/tiny.json --set data.train_size=32 --set train.epochs=1 \
  --out "$seeds/run" >/dev/null 2>&1
cp "$seeds/run/checkpoints/last.pt" "$seeds/checkpoint/last.pt"
./build/mmfusion synth --config configs/tiny.json --set data.train_size=8 --output "$seeds/npz/stored.npz" 2>/dev/null
./build/mmfusion synth --config configs/tiny.json --set data.train_size=8 --set task=classification \
  --set num_classes=3 --output "$seeds/npz/classes.npz" 2>/dev/null
# NumPy's own compressed archive, when NumPy is there.
/usr/bin/python3 -c "import numpy as np; np.savez_compressed('$seeds/npz/deflated.npz', \
  visual=np.ones((4, 16), np.float32), audio=np.zeros((4, 8)), text=np.ones((4, 24), np.float32), \
  target=np.arange(4) % 3)" 2>/dev/null || true

# The pickles Python writes (every protocol, the three layouts, hostile ones), and the
# committed corpus.
/usr/bin/python3 tests/pickle_fixtures.py "$seeds/pickle" >/dev/null 2>&1 || true
rm -f "$seeds/pickle/expected.npz"
cp tests/fixtures/fuzz/pickle-corpus/* "$seeds/pickle/" 2>/dev/null || true

status=0
for target in "${targets[@]}"; do
  corpus="$out/$target-corpus" artifacts="$out/$target-artifacts"
  mkdir -p "$corpus" "$artifacts"
  case $target in
    data_file) seed_dir=$seeds/data ;; npz) seed_dir=$seeds/npz ;; pickle) seed_dir=$seeds/pickle ;;
    *) seed_dir=$seeds/checkpoint ;;
  esac
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    build-fuzz/fuzz_$target "$corpus" "$seed_dir" -max_total_time="$seconds" -rss_limit_mb=4096 \
    -malloc_limit_mb=2048 -timeout=25 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    > "$out/$target.log" 2>&1 &
  eval "pid_$target=$!"
done
for target in "${targets[@]}"; do
  eval "pid=\$pid_$target"
  wait "$pid" || true
  log="$out/$target.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -oE '(cov|DONE) *: *[0-9]+|cov: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  crashes=$(find "$out/$target-artifacts" -type f -newer "$seeds" | wc -l)  # this run's only
  echo "fuzz_$target: ${seconds}s, $runs executions, coverage $cov edges ($ft features), corpus $(ls "$out/$target-corpus" | wc -l) inputs, $crashes crash/oom/timeout inputs"
  [ "$crashes" -eq 0 ] || status=1
done
exit $status
