#!/usr/bin/env bash
# Runs `mmfusion bench` and the PyTorch/Python reference (bench/reference.py) alternately
# on the same config, batch sizes and thread count, and prints the throughput ratio per
# batch size (median of the rounds). Timings are only compared within this one run.
#   usage: bench/compare.sh [CONFIG] [--set KEY=VALUE]...
#   env:   BATCH_SIZES (default 32,256,2048), ROUNDS (default 2), STEPS (default 50),
#          MMFUSION (the binary; default ./build/mmfusion)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MMFUSION:-./build/mmfusion}
config=${1:-configs/default.json}
shift || true
batches=${BATCH_SIZES:-32,256,2048}
rounds=${ROUNDS:-2}
steps=${STEPS:-50}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" validate --config "$config" "$@" > "$tmp/resolved.json"
for r in $(seq "$rounds"); do
  "$bin" bench --config "$config" "$@" --batch-sizes "$batches" --steps "$steps" --json \
    > "$tmp/cpp-$r.json" 2>/dev/null
  /usr/bin/python3 bench/reference.py --config "$tmp/resolved.json" --batch-sizes "$batches" \
    --steps "$steps" > "$tmp/py-$r.json"
done
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
cpp = [json.load(open(f"{tmp}/cpp-{r}.json")) for r in range(1, rounds + 1)]
py = [json.load(open(f"{tmp}/py-{r}.json")) for r in range(1, rounds + 1)]
c0 = cpp[0]
print(f"model {c0['model']}, {c0['threads']} threads, {c0['parameters']} parameters; "
      f"matmul ceiling {c0['matmul_gflops']:.1f} GFLOP/s; {rounds} alternating rounds")
print(f"{'batch':>6} {'mmfusion/s':>12} {'python/s':>12} {'ratio':>7} {'eval ratio':>11} {'GFLOP/s':>9} {'% ceiling':>10}")
for i, b in enumerate(c0["results"]):
    c = statistics.median(x["results"][i]["train"]["samples_per_s"] for x in cpp)
    p = statistics.median(x["results"][i]["train"]["samples_per_s"] for x in py)
    ce = statistics.median(x["results"][i]["eval"]["samples_per_s"] for x in cpp)
    pe = statistics.median(x["results"][i]["eval"]["samples_per_s"] for x in py)
    g = statistics.median(x["results"][i]["train"]["gflops"] for x in cpp)
    print(f"{b['batch_size']:>6} {c:>12.0f} {p:>12.0f} {c / p:>6.2f}x {ce / pe:>10.2f}x {g:>9.2f} "
          f"{100 * g / c0['matmul_gflops']:>9.1f}%")
PY
