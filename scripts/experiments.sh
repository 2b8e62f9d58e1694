#!/usr/bin/env bash
# Regenerates the experiment report's numbers: runs the committed sweeps in
# configs/sweeps/ (a rerun skips what is already complete) and writes their tables, the
# machine and the date into OUT/tables.md, with the charts beside it.
#   usage: scripts/experiments.sh [OUT]      (default runs/report; ~6 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/report}
bin=./build/mmfusion
mkdir -p "$out"
sweeps=(methods_additive methods_interaction rank efficiency classification)
for s in "${sweeps[@]}"; do
  "$bin" sweep --sweep "configs/sweeps/$s.json" --out "$out/$s" > /dev/null
done
# MKL on the same data as the seed-1 runs: classification (the default, interaction-
# dominated target) and regression on both target structures.
additive='data.synthetic.weights={"unimodal":1,"bimodal":0,"trimodal":0}'
interaction='data.synthetic.weights={"unimodal":0.2,"bimodal":1,"trimodal":1}'
mkl() { local dir=$1; shift; [ -f "$out/$dir/mkl.json" ] || { rm -rf "${out:?}/$dir"; "$bin" mkl --config configs/default.json --set seed=1 --set threads=2 "$@" --out "$out/$dir" > /dev/null; }; }
mkl mkl-classification --set task=classification --set num_classes=3
mkl mkl-regression-additive --set "$additive"
mkl mkl-regression-interaction --set "$interaction"
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
  echo
  echo "## mkl"
  echo
  echo "Command: \`mmfusion mkl --config configs/default.json --set seed=1 ...\` (see scripts/experiments.sh)."
  echo
  echo "| data | kernel | test metrics | kPCA separability | weight |"
  echo "| --- | --- | --- | --- | --- |"
  for d in mkl-classification mkl-regression-additive mkl-regression-interaction; do
    /usr/bin/python3 - "$out/$d/mkl.json" "$d" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); name = sys.argv[2]
keys = ["accuracy", "macro_f1"] if m["task"] == "classification" else ["mse", "r2"]
for k in list(m["weights"]) + ["uniform", "learned"]:
    t = m["metrics"][k]["test"]
    sep = m["separability"].get(k)
    w = m["weights"].get(k)
    print("| %s | %s | %s | %s | %s |" % (name, k, ", ".join("%s %.4f" % (x, t[x]) for x in keys),
          "-" if sep is None else "%.3f" % sep, "-" if w is None else "%.3f" % w))
PY
  done
} > "$out/tables.md"
echo "$out/tables.md"
