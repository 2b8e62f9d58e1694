#!/usr/bin/env bash
# The explain section of docs/experiments.md: truth against `mmfusion explain` for lmf,
# tfn, concat and late on four target structures (additive, pairs, 3-way, mixed with a
# noise modality), 3 seeds each, on independent modalities (shared_latent_dim 0); then
# explain's shares on the real leaves100 data beside MKL's kernel weights. A rerun skips
# the trainings and explanations that are complete (delete RUN/explain to explain
# again). Writes OUT/tables.md and OUT/explain-error.svg.
#   usage: scripts/explain-experiments.sh [OUT]   (default runs/explain; ~15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/explain}
bin=./build/mmfusion
mkdir -p "$out"

source scripts/structures.sh
# Small encoders, so that TFN's outer product (17 x 9 x 17) trains in seconds too.
common=(--set threads=1 "${structure_data[@]}"
        --set 'model.encoders={"visual":[16],"audio":[8],"text":[16]}' --set model.rank=8
        --set model.fused_dim=16 --set model.dropout=0 --set train.epochs=30 --set train.lr=0.003)
for structure in additive pairs triple mixed; do
  for model in lmf tfn concat late; do
    for seed in 1 2 3; do
      run="$out/$structure-$model-$seed"
      if [ ! -f "$run/results.json" ]; then
        rm -rf "$run"
        "$bin" train --config configs/default.json "${common[@]}" --set seed=$seed --set model.type=$model \
          --set "data.synthetic.terms=${structures[$structure]}" --out "$run" > /dev/null 2>> "$out/train.log"
      fi
      [ -f "$run/explain/explain.json" ] ||
        "$bin" explain --checkpoint "$run/checkpoints/best.pt" --samples 32768 --bootstrap 0 > /dev/null
    done
  done
done

# leaves100: explain on the LMF of configs/leaves100.json (3 seeds), MKL's weights beside it.
for seed in 1 2 3; do
  run="$out/leaves100-lmf-$seed"
  if [ ! -f "$run/results.json" ]; then
    rm -rf "$run"
    "$bin" train --config configs/leaves100.json --set threads=1 --set seed=$seed --out "$run" > /dev/null 2>> "$out/train.log"
  fi
  [ -f "$run/explain/explain.json" ] ||
    "$bin" explain --checkpoint "$run/checkpoints/best.pt" --split test --samples 32768 --bootstrap 100 > /dev/null
done
[ -f "$out/leaves100-mkl/mkl.json" ] || { rm -rf "$out/leaves100-mkl"; "$bin" mkl --config configs/leaves100.json \
  --set mkl.train_size=0 --set threads=1 --out "$out/leaves100-mkl" > /dev/null 2>&1; }

/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
models = ["lmf", "tfn", "concat", "late"]
lines = ["### Truth against explain (synthetic, independent modalities)", "",
         "Mean ± std over 3 seeds of each subset's pure share; the truth in the first column. "
         "Test R² of each model in the last row.", ""]
errors = {}
for structure in ["additive", "pairs", "triple", "mixed"]:
    runs = {m: [json.load(open(f"{out}/{structure}-{m}-{s}/explain/explain.json")) for s in (1, 2, 3)] for m in models}
    r2 = {m: [json.load(open(f"{out}/{structure}-{m}-{s}/results.json"))["test"]["r2"] for s in (1, 2, 3)] for m in models}
    lines += [f"**{structure}**", "", "| subset | truth | " + " | ".join(models) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in models) + " |"]
    for i, subset in enumerate(runs["lmf"][0]["subsets"]):
        cells = []
        for m in models:
            v = [r["subsets"][i]["share"] for r in runs[m]]
            cells.append(f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}")
            errors.setdefault((structure, m), []).append(
                max(abs(r["subsets"][i]["share"] - r["subsets"][i]["truth"]) for r in runs[m]))
        lines.append(f"| {subset['name']} | {subset['truth']:.3f} | " + " | ".join(cells) + " |")
    lines.append("| test R² | | " + " | ".join(f"{statistics.mean(r2[m]):.3f} ± {statistics.stdev(r2[m]):.3f}" for m in models) + " |")
    lines.append("")
lines += ["Largest |share − truth| over subsets and seeds:", "",
          "| structure | " + " | ".join(models) + " |", "| --- | " + " | ".join("---:" for _ in models) + " |"]
for structure in ["additive", "pairs", "triple", "mixed"]:
    lines.append(f"| {structure} | " + " | ".join(f"{max(errors[(structure, m)]):.3f}" for m in models) + " |")
lines.append("")

ex = [json.load(open(f"{out}/leaves100-lmf-{s}/explain/explain.json")) for s in (1, 2, 3)]
mkl = json.load(open(f"{out}/leaves100-mkl/mkl.json"))
weights = mkl.get("weights", {})
lines += ["### leaves100: explain's shares (LMF, predicted class probabilities) and MKL's kernel weights", "",
          "| modality | unimodal share | total effect | Shapley value | MKL weight |", "| --- | ---: | ---: | ---: | ---: |"]
for m in [s["name"] for s in ex[0]["subsets"] if len(s["modalities"]) == 1]:
    i = [s["name"] for s in ex[0]["subsets"]].index(m)
    def ms(vals):
        return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    lines.append(f"| {m} | {ms([e['subsets'][i]['share'] for e in ex])} | {ms([e['total_effect'][m] for e in ex])} | "
                 f"{ms([e['shapley'][m] for e in ex])} | {weights.get(m, float('nan')):.3f} |")
lines.append("")
lines.append("| interaction order | share |")
lines.append("| --- | ---: |")
for k in sorted(ex[0]["orders"]):
    vals = [e["orders"][k] for e in ex]
    lines.append(f"| {k} | {statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f} |")
open(f"{out}/tables.md", "w").write("\n".join(lines) + "\n")

# Chart: the largest error per structure, one bar group per model.
w, h, left, top = 640, 360, 60, 40
bar = 22
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{w/2}" y="22" text-anchor="middle" font-size="15">explain against the truth: largest |share − truth|</text>']
colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
ymax = max(0.1, max(max(v) for v in errors.values()))
plot_h = h - top - 60
for si, structure in enumerate(["additive", "pairs", "triple", "mixed"]):
    x0 = left + si * 140
    svg.append(f'<text x="{x0 + 2 * bar}" y="{h - 30}" text-anchor="middle">{structure}</text>')
    for mi, m in enumerate(models):
        v = max(errors[(structure, m)])
        bh = v / ymax * plot_h
        svg.append(f'<rect x="{x0 + mi * bar}" y="{top + plot_h - bh:.1f}" width="{bar - 4}" height="{bh:.1f}" fill="{colors[mi]}"/>')
for mi, m in enumerate(models):
    svg.append(f'<rect x="{left + 580 - 60}" y="{top + 16 * mi}" width="10" height="10" fill="{colors[mi]}"/>'
               f'<text x="{left + 580 - 45}" y="{top + 16 * mi + 9}">{m}</text>')
svg.append(f'<line x1="{left - 5}" y1="{top + plot_h}" x2="{w - 20}" y2="{top + plot_h}" stroke="black"/>')
for t in [0, ymax / 2, ymax]:
    y = top + plot_h - t / ymax * plot_h
    svg.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{t:.2f}</text>')
svg.append("</svg>")
open(f"{out}/explain-error.svg", "w").write("\n".join(svg) + "\n")
print(f"{out}/tables.md")
PY
