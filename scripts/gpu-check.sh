#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and a CUDA build of PyTorch (no package
# access needed), builds mmfusion against PyTorch's LibTorch, runs the whole test suite
# (the CUDA tests included), trains the default config on cuda, and runs `mmfusion bench`
# on cuda (default LMF over batch sizes 32 to 8192; LMF against TFN at the same hidden
# sizes). Ends with a table.
# Writes at most 8 files into RESULTS_DIR.
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

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$results/summary.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11_abi", torch.compiled_with_cxx11_abi())' | tee -a "$results/summary.txt"

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

# Throughput with the bench command: the default LMF over batch sizes, and LMF against
# TFN at hidden sizes (32, 32, 64), rank 4, output 1.
$bin bench --config configs/default.json --set device=cuda --batch-sizes 32,256,2048,8192 \
  --json > "$results/bench-lmf.json" 2>> "$results/summary.txt"
small=(--set device=cuda --set 'model.encoders={"visual":[32],"audio":[32],"text":[64]}'
       --set 'model.post_hidden=[128,128]' --set model.output_dim=1 --batch-sizes 32,256,2048)
$bin bench --config configs/default.json "${small[@]}" --set model.type=lmf --json \
  > "$results/bench-lmf-small.json" 2>> "$results/summary.txt"
$bin bench --config configs/default.json "${small[@]}" --set model.type=tfn --steps 20 --json \
  > "$results/bench-tfn.json" 2>> "$results/summary.txt"
python3 - "$results" <<'PY' | tee -a "$results/summary.txt"
import json, sys
runs = {n: json.load(open(f"{sys.argv[1]}/bench-{n}.json")) for n in ("lmf", "lmf-small", "tfn")}
for name, r in runs.items():
    print(f"{name} ({r['parameters']} parameters) on {r['device']}")
    print(f"{'batch':>8} {'train samples/s':>16} {'ms/step':>9} {'eval samples/s':>15}")
    for b in r["results"]:
        print(f"{b['batch_size']:>8} {b['train']['samples_per_s']:>16.0f} {b['train']['ms_per_step']:>9.3f} "
              f"{b['eval']['samples_per_s']:>15.0f}")
print("LMF / TFN training throughput at hidden sizes (32, 32, 64), rank 4:")
for a, b in zip(runs["lmf-small"]["results"], runs["tfn"]["results"]):
    print(f"{a['batch_size']:>8} {a['train']['samples_per_s'] / b['train']['samples_per_s']:>8.1f}x")
PY
exit $tests_rc
