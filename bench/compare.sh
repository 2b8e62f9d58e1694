#!/usr/bin/env bash
# Runs `mmfusion bench` and the PyTorch/Python reference (bench/reference.py) alternately
# on the same config, batch sizes and thread count, and prints the throughput ratio per
# batch size (median of the rounds). Timings are only compared within this one run.
# On CUDA (a config or --set device=cuda) the reference runs in both of its forms, eager
# and torch.compile(mode="reduce-overhead"), and the table has a ratio to each.
#   usage: bench/compare.sh [CONFIG] [--set KEY=VALUE]...
#   env:   BATCH_SIZES (default 32,256,2048), ROUNDS (default 2), STEPS (default 50),
#          WARMUP (untimed steps first, default 10), REPEATS (timed repeats, default 5;
#          each side reports its median),
#          MMFUSION (the binary; default ./build/mmfusion),
#          PYTHON (default /usr/bin/python3: Debian's, which has torch)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MMFUSION:-./build/mmfusion}
python=${PYTHON:-/usr/bin/python3}
config=${1:-configs/default.json}
shift || true
batches=${BATCH_SIZES:-32,256,2048}
rounds=${ROUNDS:-2}
steps=${STEPS:-50}
warmup=${WARMUP:-10}
repeats=${REPEATS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" validate --config "$config" "$@" > "$tmp/resolved.json"
modes=eager
if "$python" - "$tmp/resolved.json" <<'PY'
import json, sys, torch
d = json.load(open(sys.argv[1]))["device"]
sys.exit(0 if d.startswith("cuda") or (d == "auto" and torch.cuda.is_available()) else 1)
PY
then modes="eager compile"; fi
for r in $(seq "$rounds"); do
  "$bin" bench --config "$config" "$@" --batch-sizes "$batches" --steps "$steps" \
    --warmup "$warmup" --repeats "$repeats" --json \
    > "$tmp/cpp-$r.json" 2>/dev/null
  for mode in $modes; do
    "$python" bench/reference.py --config "$tmp/resolved.json" --batch-sizes "$batches" \
      --steps "$steps" --warmup "$warmup" --repeats "$repeats" --mode "$mode" \
      > "$tmp/py-$mode-$r.json"
  done
done
"$python" - "$tmp" "$rounds" "$modes" <<'PY'
import json, os, statistics, sys
tmp, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
load = lambda name: [json.load(open(f"{tmp}/{name}-{r}.json")) for r in range(1, rounds + 1)]
cpp = load("cpp")
py = {m: load(f"py-{m}") for m in modes}
c0 = cpp[0]
def median(runs, i, key):
    values = [x["results"][i][key]["samples_per_s"] for x in runs]
    return None if None in values else statistics.median(values)
print(f"model {c0['model']} on {c0['device']} (train step: {c0['train_path']}), {c0['threads']} threads, "
      f"{c0['parameters']} parameters, tf32 {c0.get('tf32', False)}; PyTorch {py['eager'][0]['torch']}; "
      f"matmul ceiling {c0['matmul_gflops']:.1f} GFLOP/s; {rounds} alternating round(s)")
head = f"{'batch':>6} {'mmfusion/s':>12}" + "".join(f" {m + '/s':>12}" for m in modes)
head += "".join(f" {'x ' + m:>10}" for m in modes) + f" {'eval x eager':>13} {'GFLOP/s':>9} {'% ceiling':>10}"
print(head)
for i, b in enumerate(c0["results"]):
    c = median(cpp, i, "train")
    ref = {m: median(py[m], i, "train") for m in modes}
    ce, pe = median(cpp, i, "eval"), median(py["eager"], i, "eval")
    g = statistics.median(x["results"][i]["train"]["gflops"] for x in cpp)
    line = f"{b['batch_size']:>6} {c:>12.0f}" + "".join(f" {ref[m]:>12.0f}" for m in modes)
    line += "".join(f" {c / ref[m]:>9.2f}x" for m in modes)
    line += f" {ce / pe:>12.2f}x {g:>9.1f} {100 * g / c0['matmul_gflops']:>9.1f}%"
    print(line)
PY
