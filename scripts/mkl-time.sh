#!/usr/bin/env bash
# The time table of docs/experiments.md section 9 and the figures docs/mkl.md quotes:
# `mkl` on the default data with independent modalities (shared_latent_dim 0),
# additive (3 kernels) and with every interaction (7 kernels), at n = 2000 and 4000, all
# at the defaults (gamma_scale 1, mkl.split_gamma true), threads 2; test R² for the
# learned and the uniform combination. A rerun skips what is complete. Prints the table.
#   usage: scripts/mkl-time.sh [OUT] [--set KEY=VALUE ...]   (default runs/mkl-time; ~5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/mkl-time}
[ $# -gt 0 ] && shift
bin=./build/mmfusion
mkdir -p "$out"
source scripts/mkl-run.sh
data=(--config configs/default.json --set threads=2 --set data.synthetic.shared_latent_dim=0)
for n in 2000 4000; do
  mkl "$out/additive-$n" "${data[@]}" --set mkl.train_size=$n "$@"
  mkl "$out/all-$n" "${data[@]}" --set mkl.train_size=$n --set mkl.interactions=all "$@"
done
/usr/bin/python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
print("| n | kernels | building the kernels, s | whole run, s | iterations | test R² | test R², uniform weights |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in (2000, 4000):
    for kind in ("additive", "all"):
        m = json.load(open(f"{out}/{kind}-{n}/mkl.json"))
        log = open(f"{out}/{kind}-{n}/train.log").read()
        built = re.search(r"kernels built in ([0-9.]+) s", log).group(1)
        print(f"| {n} | {len(m['components'])} | {built} | {m['seconds']:.1f} | {m['iterations']} | "
              f"{m['metrics']['learned']['test']['r2']:.3f} | {m['metrics']['uniform']['test']['r2']:.3f} |")
PY
