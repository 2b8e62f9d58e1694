#!/usr/bin/env bash
# How much configs/leaves100.json's test accuracy moves with the seed and the thread
# count: seeds 1-5 x threads {1, 2}, with any --set overrides given, one line per run and
# the spread and the machine at the end (README and docs/experiments.md section 6 quote it).
#   usage: scripts/leaves100-spread.sh [--set KEY=VALUE ...]     (~1.5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/mmfusion
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "seed threads best_epoch val_accuracy test_accuracy"
for seed in 1 2 3 4 5; do
  for threads in 1 2; do
    dir="$work/s$seed-t$threads"
    "$bin" train --config configs/leaves100.json --out "$dir" --set seed=$seed \
      --set threads=$threads "$@" > /dev/null 2> "$work/log" || { cat "$work/log" >&2; exit 1; }
    /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[2], sys.argv[3], r["best_epoch"], "%.4f" % r["val"]["accuracy"], "%.4f" % r["test"]["accuracy"])' \
      "$dir/results.json" "$seed" "$threads"
  done
done | tee "$work/runs"
/usr/bin/python3 -c 'import statistics, sys
acc = [float(line.split()[4]) for line in open(sys.argv[1])]
print("test accuracy over %d runs: min %.3f, mean %.3f, max %.3f, sd %.3f"
      % (len(acc), min(acc), statistics.mean(acc), max(acc), statistics.stdev(acc)))' "$work/runs"
# The machine the figures belong to: another CPU or BLAS gives other bits.
/usr/bin/python3 -c 'import json, sys
m = json.load(open(sys.argv[1])).get("machine", {})
print("machine: CPU %s (%s cores), BLAS %s, LibTorch %s"
      % (m.get("cpu"), m.get("cores"), m.get("blas"), m.get("torch")))' "$work/s1-t1/results.json"
