#!/usr/bin/env bash
# Reading the field's pickles: a CMU-MOSI-shaped unaligned MMSA file (scripts/mosi-shaped.py,
# 2,199 rows, 426 MB) read ROUNDS times as train reads it with configs/benchmarks/mosi-lmf.json
# (`mmfusion inspect-data --config`: the speed, and the peak memory above the process's
# start as a multiple of the arrays kept), and by the tree reader alone (`inspect-data
# --file`). The file is written once to FILE (default a temporary folder) and kept when
# FILE is given. Each round reads it warm (in the page cache), as a second run does.
#   usage: bench/read-benchmark.sh [FILE]
#   env:   ROUNDS (default 3), MMFUSION (default ./build/mmfusion)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MMFUSION:-./build/mmfusion}
rounds=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
file=${1:-$tmp/unaligned_50.pkl}
[ -f "$file" ] || /usr/bin/python3 scripts/mosi-shaped.py "$file"
cat "$file" > /dev/null  # warm
for r in $(seq "$rounds"); do
  echo "round $r: inspect-data --config configs/benchmarks/mosi-lmf.json"
  "$bin" inspect-data --config configs/benchmarks/mosi-lmf.json --set data.path="$file" | tail -2 | sed 's/^/  /'
  echo "round $r: inspect-data --file (the tree only)"
  "$bin" inspect-data --file "$file" | tail -1 | sed 's/^/  /'
done
