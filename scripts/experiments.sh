#!/usr/bin/env bash
# Regenerates the experiment report's numbers: runs the committed sweeps in
# configs/sweeps/ (a rerun skips what is already complete) and writes their tables, the
# machine and the date into OUT/tables.md, with the charts beside it.
#   usage: scripts/experiments.sh [OUT]      (default runs/report; ~15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/report}
bin=./build/mmfusion
mkdir -p "$out"
sweeps=(methods_additive methods_interaction rank efficiency)
for s in "${sweeps[@]}"; do
  "$bin" sweep --sweep "configs/sweeps/$s.json" --out "$out/$s" > /dev/null
done
{
  echo "# mmfusion experiment tables"
  echo
  echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/experiments.sh $out\` with mmfusion" \
       "$("$bin" --version | cut -d' ' -f2), on $(nproc) CPU cores" \
       "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB," \
       "LibTorch from Debian, BLAS $(basename "$(dirname "$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)")")."
  for s in "${sweeps[@]}"; do
    echo
    echo "## $s"
    echo
    echo "Command: \`mmfusion sweep --sweep configs/sweeps/$s.json --out $out/$s\`; chart: \`$out/$s/chart.svg\`."
    echo
    tail -n +5 "$out/$s/summary.md"
  done
} > "$out/tables.md"
echo "$out/tables.md"
