#!/usr/bin/env bash
# Do two builds of mmfusion give the same results? Trains the same runs with both (the
# default LMF, TFN, classification, InTense; and mkl) and compares what they leave:
# metrics.jsonl and results.json without their timing and memory fields, and every tensor
# of checkpoints/best.pt and last.pt bit for bit (through Python's torch). Prints one line
# per run and exits 1 on any difference. For a change that must not alter results (a
# refactor, build flags), run the binary before and after:
#   usage: scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(readlink -f "$1") new=$(readlink -f "$2")
work=${3:-$(mktemp -d)}
mkdir -p "$work"
python=/usr/bin/python3
runs=(
  "default|configs/default.json|"
  "tfn|configs/default.json|--set model.type=\"tfn\" --set model.encoders={\"visual\":[8],\"audio\":[8],\"text\":[8]}"
  "classification|configs/leaves100.json|"
  "intense|configs/default.json|--set model.type=\"intense\""
)
status=0
for spec in "${runs[@]}"; do
  IFS='|' read -r name config sets <<<"$spec"
  for side in old new; do
    bin=${!side}
    # shellcheck disable=SC2086
    "$bin" train --config "$config" $sets --set threads=1 --out "$work/$side-$name" >/dev/null 2>"$work/$side-$name.err" ||
      { echo "$name: $side binary failed: $(tail -1 "$work/$side-$name.err")"; status=1; continue 2; }
  done
  "$python" - "$work/old-$name" "$work/new-$name" "$name" <<'PY' || status=1
import json, pathlib, sys
import torch
a, b, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
# timing and memory vary run to run; run_dir and checkpoint are paths under WORK_DIR
timing = {"seconds", "samples_per_s", "rss_mb", "peak_rss_mb", "train_seconds", "run_dir", "data_seconds",
          "checkpoint"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in timing and not k.endswith("_seconds")}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
problems = []
ma = [strip(json.loads(l)) for l in (a / "metrics.jsonl").read_text().splitlines()]
mb = [strip(json.loads(l)) for l in (b / "metrics.jsonl").read_text().splitlines()]
if ma != mb:
    problems.append("metrics.jsonl differs")
ra, rb = strip(json.loads((a / "results.json").read_text())), strip(json.loads((b / "results.json").read_text()))
if ra != rb:
    problems.append("results.json differs: " + str({k for k in ra if ra.get(k) != rb.get(k)}))
tensors = 0
for ckpt in ("best.pt", "last.pt"):
    sa = torch.jit.load(str(a / "checkpoints" / ckpt)).state_dict()
    sb = torch.jit.load(str(b / "checkpoints" / ckpt)).state_dict()
    if sa.keys() != sb.keys():
        problems.append(f"{ckpt}: entries differ")
        continue
    for k in sa:
        tensors += 1
        if sa[k].dtype != sb[k].dtype or sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k]):
            problems.append(f"{ckpt}: {k} differs")
print(f"{name}: {len(ma)} epochs, {tensors} tensors: " + ("identical" if not problems else "; ".join(problems[:5])))
sys.exit(1 if problems else 0)
PY
done
for side in old new; do
  bin=${!side}
  "$bin" mkl --config configs/default.json --set threads=1 --out "$work/$side-mkl" >/dev/null 2>"$work/$side-mkl.err" ||
    { echo "mkl: $side binary failed: $(tail -1 "$work/$side-mkl.err")"; status=1; }
done
if [ -f "$work/old-mkl/mkl.json" ] && [ -f "$work/new-mkl/mkl.json" ]; then
  "$python" - "$work/old-mkl" "$work/new-mkl" <<'PY' || status=1
import json, pathlib, sys
a, b = (pathlib.Path(p) for p in sys.argv[1:3])
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if "seconds" not in k and k != "run_dir"}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
ja, jb = strip(json.loads((a / "mkl.json").read_text())), strip(json.loads((b / "mkl.json").read_text()))
# Bit-identical, or else the largest difference of a number: LibTorch's BLAS may round the
# same product differently from one run to the next (its kernels depend on how the
# buffers are aligned), so a difference of ~1e-15 also shows between two runs of one binary.
worst = [0.0]
def close(x, y):
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(close(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and isinstance(y, (int, float)):
        worst[0] = max(worst[0], abs(x - y) / max(1.0, abs(x)))
        return abs(x - y) <= 1e-12 * max(1.0, abs(x))
    return x == y
same = ja == jb
near = same or close(ja, jb)
files = [f for f in ("kpca.csv", "predictions.csv") if (a / f).read_bytes() != (b / f).read_bytes()]
verdict = "identical" if same else (f"equal to {worst[0]:.1e} (relative)" if near else "differs")
print("mkl: mkl.json " + verdict + ("" if not files else "; differ: " + ", ".join(files)))
sys.exit(0 if near and not files else 1)
PY
fi
echo "outputs in $work"
exit $status
