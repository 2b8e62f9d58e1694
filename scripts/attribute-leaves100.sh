#!/usr/bin/env bash
# Section 10 of docs/experiments.md: four answers to "what does each leaves100 descriptor
# contribute?" side by side. attribute (concat and LMF, all 7 subsets, 3 seeds, --jobs 2,
# timed), explain on the three full-set LMFs attribute trained, InTense's scores (3
# seeds, reg 0.001) and MKL's kernel weights, all on configs/leaves100.json as shipped;
# then attribute and explain on the synthetic redundancy setting, against the truth.
# A rerun skips what is complete. Writes OUT/tables.md.
#   usage: scripts/attribute-leaves100.sh [OUT]      (default runs/attribute-leaves100; ~4 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/attribute-leaves100}
bin=./build/mmfusion
mkdir -p "$out"
for model in concat lmf; do
  [ -f "$out/attribute-$model/attribute.json" ] && continue  # its time stays as measured
  start=$(date +%s.%N)
  "$bin" attribute --config configs/leaves100.json --set model.type=$model --set threads=0 --jobs 2 \
    --out "$out/attribute-$model" > /dev/null 2> "$out/attribute-$model.log"
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }' > "$out/attribute-$model.seconds"
done
# The redundancy setting of docs/data.md, where the truth is known: visual and audio both
# observe the shared factor that drives the target, text a small term of its own.
redundancy=(--config configs/tiny.json --set model.type=concat --set data.train_size=4096
  --set data.test_size=2048 --set train.epochs=20 --set threads=2 --set data.synthetic.weights=null
  --set 'data.synthetic.terms=[{"modalities":["text"],"weight":0.5}]' --set data.synthetic.shared_weight=1
  --set 'data.synthetic.shared_by=["visual","audio"]' --set data.synthetic.shared_latent_dim=2)
"$bin" attribute "${redundancy[@]}" --out "$out/redundancy" > /dev/null 2> "$out/redundancy.log"
[ -f "$out/redundancy-explain/explain.json" ] ||
  "$bin" explain --checkpoint "$out/redundancy/visual+audio+text_seed-1/checkpoints/best.pt" --split test \
    --samples 32768 --bootstrap 0 --out "$out/redundancy-explain" > /dev/null
for k in 1 2 3; do
  ckpt="$out/attribute-lmf/margin+shape+texture_seed-$k/checkpoints/best.pt"
  [ -f "$out/explain-$k/explain.json" ] ||
    "$bin" explain --checkpoint "$ckpt" --split test --samples 32768 --bootstrap 0 --out "$out/explain-$k" > /dev/null
  run="$out/intense-$k"
  if [ ! -f "$run/results.json" ]; then
    rm -rf "$run"
    "$bin" train --config configs/leaves100.json --set threads=2 --set train.seed=$k --set model.type=intense \
      --set model.intense.reg=0.001 --out "$run" > /dev/null 2>> "$out/train.log"
  fi
done
[ -f "$out/mkl/mkl.json" ] || { rm -rf "$out/mkl"; "$bin" mkl --config configs/leaves100.json \
  --set mkl.train_size=0 --set threads=2 --out "$out/mkl" > /dev/null 2>&1; }

/usr/bin/python3 - "$out" > "$out/tables.md" <<'PY'
import json, statistics, sys
out = sys.argv[1]
load = lambda p: json.load(open(p))
ms = lambda v: f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"
ci = lambda v, c: f"{v:.2f} [{c[0]:.2f}, {c[1]:.2f}]"
att = {m: load(f"{out}/attribute-{m}/attribute.json") for m in ("concat", "lmf")}
secs = {m: float(open(f"{out}/attribute-{m}.seconds").read()) for m in ("concat", "lmf")}
ex = [load(f"{out}/explain-{k}/explain.json") for k in (1, 2, 3)]
intense = [load(f"{out}/intense-{k}/results.json") for k in (1, 2, 3)]
mkl = load(f"{out}/mkl/mkl.json")
mods = att["concat"]["modalities"]
print(f"attribute wall time, 21 runs each, --jobs 2: concat {secs['concat']:.0f} s, LMF {secs['lmf']:.0f} s\n")
print("| subset | concat: information (bits) | concat: accuracy | LMF: information (bits) | LMF: accuracy |")
print("| --- | ---: | ---: | ---: | ---: |")
by = {m: {s["name"]: s for s in att[m]["subsets"]} for m in att}
for name in by["concat"]:
    cells = []
    for m in ("concat", "lmf"):
        s = by[m][name]
        cells += [ci(s["values"]["information"], s["ci"]["information"]), ci(s["values"]["accuracy"], s["ci"]["accuracy"])]
    print(f"| {name} | " + " | ".join(cells) + " |")
print("\n| pure term (Moebius, bits) | concat | LMF |")
print("| --- | ---: | ---: |")
mob = {m: {t["name"]: t for t in att[m]["mobius"]} for m in att}
for name in mob["concat"]:
    print(f"| {name} | " + " | ".join(ci(mob[m][name]["value"], mob[m][name]["ci"]) for m in ("concat", "lmf")) + " |")
weights = mkl.get("weights", {})
print("\n| modality | attribute Shapley (concat, bits) | attribute leave-one-out (concat, bits) | attribute Shapley (LMF, bits) | explain Shapley (LMF) | InTense score | MKL weight |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in mods:
    a, l = att["concat"], att["lmf"]
    print(f"| {m} | {ci(a['shapley'][m], a['shapley_ci'][m])} | {ci(a['leave_one_out'][m], a['leave_one_out_ci'][m])} | "
          f"{ci(l['shapley'][m], l['shapley_ci'][m])} | {ms([e['shapley'][m] for e in ex])} | "
          f"{ms([r['relevance'][m] for r in intense])} | {weights.get(m, float('nan')):.3f} |")
dep = ex[0].get("dependence") or {}
print("\nexplain's dependence check (cross-validated R² of each modality from the others): " +
      ", ".join(f"{m} {dep['r2'][m]:.2f}" for m in mods) if dep else "")
print(f"\nInTense test accuracy: {ms([r['test']['accuracy'] for r in intense])}")
red, rex = load(f"{out}/redundancy/attribute.json"), load(f"{out}/redundancy-explain/explain.json")
full_r2 = [s for s in red["subsets"] if len(s["modalities"]) == 3][0]["values"]["r2"]
share = {s["name"]: s["share"] for s in rex["subsets"]}
print("\n**The redundancy setting** (concat, 3 seeds; explain on seed 1's full model, its shares "
      f"times its test R² {full_r2:.3f}; truth: the generator's)\n")
print("| subset | R² truth | attribute R² | pure term truth | attribute pure term | explain share × R² |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
mob = {t["name"]: t for t in red["mobius"]}
for s in red["subsets"]:
    t = mob[s["name"]]
    print(f"| {s['name']} | {s['truth']:.3f} | {ci(s['values']['r2'], s['ci']['r2'])} | {t['truth']:.3f} | "
          f"{ci(t['value'], t['ci'])} | {share.get(s['name'], 0.0) * full_r2:.3f} |")
print("\n| modality | Shapley truth | attribute Shapley | attribute leave-one-out | explain Shapley × R² | explain dependence R² |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for m in red["modalities"]:
    print(f"| {m} | {red['shapley_truth'][m]:.3f} | {ci(red['shapley'][m], red['shapley_ci'][m])} | "
          f"{ci(red['leave_one_out'][m], red['leave_one_out_ci'][m])} | {rex['shapley'][m] * full_r2:.3f} | "
          f"{rex['dependence']['r2'][m]:.2f} |")
PY
cat "$out/tables.md"
