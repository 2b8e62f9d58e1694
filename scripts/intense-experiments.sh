#!/usr/bin/env bash
# The InTense section of docs/experiments.md: InTense's relevance scores beside explain's
# shares and the generator's truth on explain's four structures and an XOR-like
# classification (3 seeds each; late fusion beside it on XOR); the sweep over p and reg
# (configs/sweeps/intense.json, 3 seeds); and leaves100, where the scores sit beside
# explain's shares and MKL's kernel weights. A rerun skips what is complete. Writes
# OUT/tables.md.
#   usage: scripts/intense-experiments.sh [OUT]   (default runs/intense; ~20 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/intense}
bin=./build/mmfusion
mkdir -p "$out"

source scripts/structures.sh
structures[xor]='[{"modalities":["visual","audio"]}]'
# As in scripts/explain-experiments.sh: small encoders.
common=(--set threads=1 "${structure_data[@]}" --set 'model.encoders={"visual":[16],"audio":[8],"text":[16]}'
        --set model.dropout=0 --set train.epochs=30 --set train.lr=0.003)
xor=(--set task=classification --set num_classes=2 --set data.synthetic.target_noise=0.01)

train() {  # train RUN ARGS...: a run folder, unless it is complete
  local run=$1
  shift
  [ -f "$run/results.json" ] && return
  rm -rf "$run"
  "$bin" train "$@" --out "$run" > /dev/null 2>> "$out/train.log"
}
explain() {  # explain RUN [ARGS...]
  local run=$1
  shift
  [ -f "$run/explain/explain.json" ] ||
    "$bin" explain --checkpoint "$run/checkpoints/best.pt" --samples 32768 --bootstrap 0 "$@" > /dev/null
}

for structure in additive pairs triple mixed xor; do
  extra=()
  [ "$structure" = xor ] && extra=("${xor[@]}")
  for seed in 1 2 3; do
    run="$out/$structure-intense-$seed"
    train "$run" --config configs/default.json "${common[@]}" "${extra[@]}" --set seed=$seed --set model.type=intense \
      --set "data.synthetic.terms=${structures[$structure]}"
    explain "$run"
  done
done
for seed in 1 2 3; do
  train "$out/xor-late-$seed" --config configs/default.json "${common[@]}" "${xor[@]}" --set seed=$seed \
    --set model.type=late --set "data.synthetic.terms=${structures[xor]}"
done

# p and reg, on the mixed structure with the settings above (the sweep file's own base
# has the default 128/64/300 features; these runs use the smaller setup of the rest).
"$bin" sweep --sweep configs/sweeps/intense.json "${common[@]}" --set threads=2 --set train.epochs=20 \
  --out "$out/sweep" > /dev/null 2>> "$out/train.log"

# leaves100: InTense on configs/leaves100.json, explain on it, MKL's weights. reg 0.001:
# the penalty grows with the fusion layer's rows (100 classes here), and reg 0.01 already
# costs most of the accuracy (docs/intense.md).
for seed in 1 2 3; do
  run="$out/leaves100-intense-$seed"
  train "$run" --config configs/leaves100.json --set threads=1 --set seed=$seed --set model.type=intense \
    --set model.intense.reg=0.001
  explain "$run" --split test
done
[ -f "$out/leaves100-mkl/mkl.json" ] || { rm -rf "$out/leaves100-mkl"; "$bin" mkl --config configs/leaves100.json \
  --set mkl.train_size=0 --set threads=1 --out "$out/leaves100-mkl" > /dev/null 2>&1; }

/usr/bin/python3 - "$out" <<'PY'
import csv, json, statistics, sys
out = sys.argv[1]
def ms(v):
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"
def load(path):
    return json.load(open(path))
lines = ["### Scores, explain's shares and the truth", "",
         "InTense (p = 1, reg 0.05), mean ± std over 3 seeds. share: explain's pure share of the model's "
         "output variance; score: the block's relevance score.", ""]
for structure in ["additive", "pairs", "triple", "mixed", "xor"]:
    ex = [load(f"{out}/{structure}-intense-{s}/explain/explain.json") for s in (1, 2, 3)]
    res = [load(f"{out}/{structure}-intense-{s}/results.json") for s in (1, 2, 3)]
    lines += [f"**{structure}**", "", "| subset | truth | explain share | relevance score |", "| --- | ---: | ---: | ---: |"]
    for i, subset in enumerate(ex[0]["subsets"]):
        name = subset["name"]
        lines.append(f"| {name} | {subset['truth']:.3f} | {ms([e['subsets'][i]['share'] for e in ex])} | "
                     f"{ms([r['relevance'][name] for r in res])} |")
    metric = "accuracy" if structure == "xor" else "r2"
    lines.append(f"| test {'accuracy' if metric == 'accuracy' else 'R²'} | | {ms([r['test'][metric] for r in res])} | |")
    lines.append("")
late = [load(f"{out}/xor-late-{s}/results.json")["test"]["accuracy"] for s in (1, 2, 3)]
lines += [f"Late fusion on xor: test accuracy {ms(late)}.", ""]

rows = list(csv.DictReader(open(f"{out}/sweep/results.csv")))
blocks = [k[len("relevance_"):] for k in rows[0] if k.startswith("relevance_")]
noise = [b for b in blocks if "text" in b]
lines += ["### p and reg (mixed structure)", "",
          "Mean ± std over 3 seeds. Noise blocks: the four blocks with text, which the target does not use.", "",
          "| p | reg | test R² | visual | audio | visual:audio | noise blocks (sum) |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
groups = {}
for r in rows:
    groups.setdefault((float(r["model.intense.p"]), float(r["model.intense.reg"])), []).append(r)
for (p, reg), rs in sorted(groups.items()):
    cell = lambda b: ms([float(r["relevance_" + b]) for r in rs])
    lines.append(f"| {p:g} | {reg:g} | {ms([float(r['test_r2']) for r in rs])} | {cell('visual')} | {cell('audio')} | "
                 f"{cell('visual:audio')} | {ms([sum(float(r['relevance_' + b]) for b in noise) for r in rs])} |")
lines.append("")

ex = [load(f"{out}/leaves100-intense-{s}/explain/explain.json") for s in (1, 2, 3)]
res = [load(f"{out}/leaves100-intense-{s}/results.json") for s in (1, 2, 3)]
weights = load(f"{out}/leaves100-mkl/mkl.json").get("weights", {})
lines += ["### leaves100", "",
          f"InTense (reg 0.001), 3 seeds: test accuracy {ms([r['test']['accuracy'] for r in res])}. Unimodal rows: MKL's kernel "
          "weight and explain's Shapley value beside the score.", "",
          "| block | relevance score | explain share | explain Shapley value | MKL weight |", "| --- | ---: | ---: | ---: | ---: |"]
for i, subset in enumerate(ex[0]["subsets"]):
    name = subset["name"]
    single = len(subset["modalities"]) == 1
    lines.append(f"| {name} | {ms([r['relevance'][name] for r in res])} | {ms([e['subsets'][i]['share'] for e in ex])} | "
                 + (f"{ms([e['shapley'][name] for e in ex])} | {weights.get(name, float('nan')):.3f} |" if single else "| |"))
open(f"{out}/tables.md", "w").write("\n".join(lines) + "\n")
print(f"{out}/tables.md")
PY
