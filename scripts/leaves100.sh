#!/usr/bin/env bash
# The real-data table of docs/experiments.md: every model type and each modality alone
# (concat on one modality), with data.standardize none and zscore, 3 seeds each, plus MKL
# with both settings, on data/leaves100 with configs/leaves100.json. A rerun skips the
# runs that are complete. Writes OUT/tables.md.
#   usage: scripts/leaves100.sh [OUT]      (default runs/leaves100; ~25 min on 2 cores, TFN most of it)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/leaves100}
bin=./build/mmfusion
mkdir -p "$out"
"$bin" sweep --sweep configs/sweeps/leaves100.json --out "$out/main" > /dev/null 2> "$out/main.log"
"$bin" sweep --sweep configs/sweeps/leaves100_single.json --out "$out/single" > /dev/null 2> "$out/single.log"
for s in none zscore; do
  [ -f "$out/mkl-$s/mkl.json" ] || { rm -rf "${out:?}/mkl-$s"; "$bin" mkl --config configs/leaves100.json \
    --set data.standardize=$s --set mkl.train_size=0 --set threads=1 --out "$out/mkl-$s" > /dev/null 2>&1; }
done
/usr/bin/python3 - "$out" > "$out/tables.md" <<'PY'
import csv, json, statistics, sys
out = sys.argv[1]

def rows(sweep):
    with open(f"{out}/{sweep}/results.csv") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "ok"]

def cell(values):
    if not values:
        return "-"
    if len(values) == 1:
        return "%.3f" % values[0]
    return "%.3f ± %.3f" % (statistics.mean(values), statistics.stdev(values))

def acc(rs, **match):
    return [float(r["test_accuracy"]) for r in rs if all(r[k] == v for k, v in match.items())]

main, single = rows("main"), rows("single")
print("| method | standardize none | standardize zscore |")
print("| --- | --- | --- |")
for model in ["lmf", "tfn", "concat", "late"]:
    print("| %s, three modalities | %s | %s |" % (model, cell(acc(main, **{"model.type": model, "data.standardize": "none"})),
                                                 cell(acc(main, **{"model.type": model, "data.standardize": "zscore"}))))
for name in ["margin", "shape", "texture"]:
    def alone(r, s):
        return name in r["data.modalities"] and r["data.standardize"] == s
    print("| concat, %s only | %s | %s |" % (name, cell([float(r["test_accuracy"]) for r in single if alone(r, "none")]),
                                            cell([float(r["test_accuracy"]) for r in single if alone(r, "zscore")])))
mkl = {s: json.load(open(f"{out}/mkl-{s}/mkl.json")) for s in ["none", "zscore"]}
for k in list(mkl["zscore"]["weights"]) + ["uniform", "learned"]:
    print("| MKL (%s), kernel %s | %s | %s |" % (mkl["zscore"]["solver"] if "solver" in mkl["zscore"] else "simple", k,
          *("%.3f" % mkl[s]["metrics"][k]["test"]["accuracy"] for s in ["none", "zscore"])))
print()
print("| MKL kernel | weight (none) | weight (zscore) | kPCA separability (none) | kPCA separability (zscore) |")
print("| --- | --- | --- | --- | --- |")
for k in list(mkl["zscore"]["weights"]) + ["uniform", "learned"]:
    w = ["%.3f" % mkl[s]["weights"][k] if k in mkl[s]["weights"] else "-" for s in ["none", "zscore"]]
    sep = ["%.3f" % mkl[s]["separability"][k] if k in mkl[s]["separability"] else "-" for s in ["none", "zscore"]]
    print("| %s | %s | %s | %s | %s |" % (k, *w, *sep))
PY
echo "$out/tables.md"
