#!/usr/bin/env bash
# docs/experiments.md, "Robustness on leaves100": LMF, TFN, late fusion and InTense on
# configs/leaves100.json (EPOCHS epochs, seed 1; InTense at model.intense.reg 0.001, as
# docs/experiments.md section 8 found for leaves100), each without and with
# train.modality_dropout=0.3, then `mmfusion robustness` on the test split (10 levels,
# 3 draws, accuracy). Complete runs are kept and skipped. Prints a markdown table: each
# model's clean accuracy, the accuracy with each modality missing from every row and all
# three under noise of 1 sd, and each curve's relative robustness.
#   usage: scripts/robustness-leaves100.sh OUT [EPOCHS (default 150)]
#   env:   MMFUSION (default ./build/mmfusion), THREADS (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MMFUSION:-./build/mmfusion}
out=${1:?usage: scripts/robustness-leaves100.sh OUT [EPOCHS]}
epochs=${2:-150}
threads=${THREADS:-1}
mkdir -p "$out"
for model in lmf tfn late intense; do
  for p in 0 0.3; do
    run="$out/$model-p$p"
    if [ ! -f "$run/results.json" ]; then
      rm -rf "$run"
      "$bin" train --config configs/leaves100.json --set model.type=$model --set train.epochs=$epochs \
        --set train.modality_dropout=$p --set threads=$threads \
        $( [ $model = intense ] && echo --set model.intense.reg=0.001 ) --out "$run" > "$out/$model-p$p.log" 2>&1
    fi
    [ -f "$run/robustness/robustness.json" ] ||
      "$bin" robustness --checkpoint "$run/checkpoints/best.pt" --levels 10 --repeats 3 \
        --metric accuracy > /dev/null
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| model | modality dropout | clean | margin missing | shape missing | texture missing | all, noise 1 sd | relative robustness: margin / shape / texture drop, all noise |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for model in ["lmf", "tfn", "late", "intense"]:
    for p in ["0", "0.3"]:
        r = json.loads((out / f"{model}-p{p}" / "robustness" / "robustness.json").read_text())
        c = {(x["modality"], x["kind"]): x for x in r["curves"]}
        rr = r["relative_robustness"]
        cells = [f"{c[(m, 'drop')]['values'][-1]:.3f}" for m in ["margin", "shape", "texture"]]
        print(f"| {model} | {p} | {r['clean']:.3f} | " + " | ".join(cells) +
              f" | {c[('all', 'noise')]['values'][-1]:.3f} | " +
              " / ".join(f"{rr[k]:.3f}" for k in ["margin/drop", "shape/drop", "texture/drop", "all/noise"]) + " |")
PY
