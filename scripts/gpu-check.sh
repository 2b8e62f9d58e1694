#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and a CUDA build of PyTorch (no package
# access needed), builds mmfusion against PyTorch's LibTorch, runs the whole test suite
# (the CUDA tests included), trains the default config on cuda, and measures training
# throughput over batch sizes. Ends with a short table.
#   usage: scripts/gpu-check.sh [DEBS_DIR] [RESULTS_DIR]
#   DEBS_DIR     .deb files from scripts/gpu/fetch-deps.sh (default .gpu/debs)
#   RESULTS_DIR  where logs and the table go (default $OUT, else gpu-check-results)
set -uo pipefail
cd "$(dirname "$0")/.."
debs=${1:-.gpu/debs}
results=${2:-${OUT:-gpu-check-results}}
build=build-cuda
mkdir -p "$results"
log() { echo "== $*" | tee -a "$results/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$results/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11_abi", torch.compiled_with_cxx11_abi())' | tee -a "$results/gpu.txt"

start=$(date +%s)
if ! scripts/gpu/build-cuda.sh "$debs" . "$build" -DMMFUSION_PYTHON="$(command -v python3)" \
    > "$results/build.log" 2>&1; then
  tail -40 "$results/build.log"
  log "build FAILED (see build.log)"
  exit 1
fi
export LD_LIBRARY_PATH="/opt/mmfusion-deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "build: $(( $(date +%s) - start )) s"

start=$(date +%s)
ctest --test-dir "$build" --output-on-failure -j 8 > "$results/ctest.log" 2>&1
tests_rc=$?
grep -E "tests passed|tests failed" "$results/ctest.log" | tee -a "$results/summary.txt"
grep -E "^\s*[0-9]+/[0-9]+ Test .*Cuda" "$results/ctest.log" | tee -a "$results/summary.txt"
grep -A30 "The following tests FAILED" "$results/ctest.log" | tee -a "$results/summary.txt"
log "tests: rc $tests_rc, $(( $(date +%s) - start )) s"

bin=$build/mmfusion
run=$(mktemp -d)/default-cuda
$bin train --config configs/default.json --set device=cuda --set train.epochs=5 \
  --out "$run" > /dev/null 2> "$results/train-default.log"
log "default config on cuda: rc $?"
cp "$run/metrics.jsonl" "$results/default-metrics.jsonl" 2>/dev/null
tail -3 "$results/train-default.log" | tee -a "$results/summary.txt"

# Throughput: 65536 training samples so every batch size has many steps; the last of
# 3 epochs is reported (the first includes CUDA warm-up).
printf "%-8s %14s %10s\n" batch samples/s ms/step | tee "$results/throughput.txt"
for bs in 32 256 2048 8192; do
  dir=$(mktemp -d)
  $bin train --config configs/default.json --set device=cuda --set train.epochs=3 \
    --set data.train_size=65536 --set train.batch_size=$bs --out "$dir/run" > /dev/null 2>&1
  tail -1 "$dir/run/metrics.jsonl" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); steps = -(-65536 // $bs)
print('%-8d %14.0f %10.3f' % ($bs, r['samples_per_s'], 1000 * r['seconds'] / steps))" | tee -a "$results/throughput.txt"
  rm -rf "$dir"
done
cat "$results/throughput.txt" >> "$results/summary.txt"
exit $tests_rc
