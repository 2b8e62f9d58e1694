#!/usr/bin/env bash
# GPU check, prepared to run once inside a short GPU lease (about 8 minutes on an H100 or
# H200): on a machine with an NVIDIA GPU and a CUDA build of PyTorch (no package access
# needed) it
#   1. builds mmfusion against PyTorch's LibTorch (scripts/gpu/build-cuda.sh),
#   2. runs the CUDA tests (the CUDA-graph step against the eager one among them),
#   3. runs bench/compare.sh on cuda: mmfusion against PyTorch eager and
#      torch.compile(mode="reduce-overhead"), batch 32 to 65536,
#   4. times mmfusion's step on cuda: CUDA graph against eager, TF32 off and on, TFN,
#   5. trains the default config on cuda (graph, eager, TF32) and compares test metrics,
#   6. trains InTense on cuda (graph and eager, with their relevance scores),
#   7. runs `mmfusion explain` and `mmfusion mkl` (with every interaction kernel) on cuda,
#   8. runs the whole test suite, except the docs' command replay (CPU-only, and minutes).
# Each stage appends to summary.txt, which ends with the table of what ran.
# Writes at most 8 files into RESULTS_DIR (what a device lease returns). Every stage is
# cut at the deadline (BUDGET seconds from the start, default 540), so that a lease that
# ends returns what ran.
# STAGES (default: all) names the stages to run after the build, for a second call that
# finishes what a first one left: cuda-tests compare bench train intense explain mkl suite
# (explain needs train in the same call, for its checkpoint).
#   usage: scripts/gpu-check.sh [DEBS_DIR] [RESULTS_DIR]
#   DEBS_DIR     .deb files from scripts/gpu/fetch-deps.sh (default .gpu/debs)
#   RESULTS_DIR  where logs and the table go (default $OUT, else gpu-check-results)
set -uo pipefail
cd "$(dirname "$0")/.."
debs=${1:-.gpu/debs}
results=${2:-${OUT:-gpu-check-results}}
build=build-cuda
mkdir -p "$results"
summary=$results/summary.txt
t0=$(date +%s)
deadline=$(( t0 + ${BUDGET:-540} ))
# limit CAP: seconds a stage may take, CAP at most and no later than the deadline.
limit() { local left=$(( deadline - $(date +%s) )); left=$(( left < $1 ? left : $1 )); echo $(( left < 1 ? 1 : left )); }
declare -a table
all_stages="cuda-tests compare bench train intense explain mkl suite"
stages=" ${STAGES:-$all_stages} "
for s in $stages; do
  [[ " $all_stages " == *" $s "* ]] || { echo "gpu-check: unknown stage '$s' (stages: $all_stages)" >&2; exit 2; }
done
[[ $stages == *" explain "* && $stages != *" train "* ]] &&
  { echo "gpu-check: explain needs train in the same call (its checkpoint)" >&2; exit 2; }
want() { [[ $stages == *" $1 "* ]]; }
say() { echo "$*" | tee -a "$summary"; }
# stage NAME RC: one line of the final table, with the seconds since the start.
stage() {
  local line
  line=$(printf '%-34s %-8s %5d s' "$1" "$([ "$2" = 0 ] && echo ok || echo "FAIL($2)")" $(( $(date +%s) - t0 )))
  table+=("$line")
  say "== $line"
}

date -u +'%Y-%m-%d %H:%M UTC' | tee -a "$summary"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$summary"

if ! scripts/gpu/build-cuda.sh "$debs" . "$build" -DMMFUSION_PYTHON="$(command -v python3)" \
    > "$results/build.log" 2>&1; then
  grep -B2 -A12 -m3 "error" "$results/build.log" | tee -a "$summary"
  stage "build" 1
  # The rest still runs on the eager step: build again without CUDA graphs.
  if ! scripts/gpu/build-cuda.sh "$debs" . "$build" -DMMFUSION_CUDA_GRAPHS=OFF >> "$results/build.log" 2>&1; then
    tail -40 "$results/build.log"
    stage "build without CUDA graphs" 1
    exit 1
  fi
fi
grep -E "mmfusion: LibTorch|CUDA graphs" "$results/build.log" | tee -a "$summary"
grep -q "CUDA graphs of the training step are built" "$results/build.log" ||
  say "!! this build has no CUDA graphs: the graph tests fail and every step below runs eagerly"
stage build 0
export LD_LIBRARY_PATH="${MMFUSION_DEPS_PREFIX:-/opt/mmfusion-deps}/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=$build/mmfusion
work=$(mktemp -d)

if want cuda-tests; then
timeout "$(limit 120)" ctest --test-dir "$build" -R '^Cuda\.' --output-on-failure -j 4 > "$results/ctest-cuda.log" 2>&1
rc=$?
grep -E "tests passed|tests failed|Passed|Failed|\*\*\*" "$results/ctest-cuda.log" | tee -a "$summary"
stage "CUDA tests" $rc
fi

if want compare; then
# The side-by-side: one round, mmfusion and both PyTorch forms one after the other.
PYTHON=python3 MMFUSION=$bin BATCH_SIZES=32,256,2048,8192,65536 ROUNDS=1 STEPS=50 \
  timeout "$(limit 150)" bench/compare.sh configs/default.json --set device=cuda > "$results/compare.txt" 2>&1
rc=$?
cat "$results/compare.txt" | tee -a "$summary"
stage "compare (eager, torch.compile)" $rc
fi

if want bench; then
# mmfusion's own step: graph against eager, TF32, and TFN at the same sizes.
{
  for variant in "graph" "eager train.cuda_graphs=false" "graph+tf32 train.tf32=true"; do
    read -r name set <<< "$variant"
    echo "-- default LMF, $name"
    timeout "$(limit 60)" $bin bench --config configs/default.json --set device=cuda ${set:+--set $set} \
      --batch-sizes 32,2048,65536 --steps 50 2>&1
  done
  small=(--set device=cuda --set 'model.encoders={"visual":[32],"audio":[32],"text":[64]}'
         --set 'model.post_hidden=[128,128]' --set model.output_dim=1 --batch-sizes 32,2048 --steps 20)
  echo "-- LMF and TFN at hidden sizes (32, 32, 64), rank 4"
  timeout "$(limit 30)" $bin bench --config configs/default.json "${small[@]}" --set model.type=lmf 2>&1
  timeout "$(limit 60)" $bin bench --config configs/default.json "${small[@]}" --set model.type=tfn 2>&1
} > "$results/bench.txt"
rc=$?
cat "$results/bench.txt" | tee -a "$summary"
stage "bench (graph, eager, tf32, tfn)" $rc
fi

if want train; then
# The default config trained on cuda: the graph, the eager step, and TF32.
rc=0
for variant in "graph" "eager train.cuda_graphs=false" "tf32 train.tf32=true"; do
  read -r name set <<< "$variant"
  echo "-- $name" >> "$results/train.log"
  timeout "$(limit 60)" $bin train --config configs/default.json --set device=cuda ${set:+--set $set} --out "$work/$name" \
    >> "$results/train.log" 2>&1 || rc=$?
done
python3 - "$work" <<'PY' | tee -a "$summary"
import json, sys
print(f"{'default config on cuda':<24} {'test mse':>10} {'test r2':>9} {'samples/s (last epoch)':>23}")
for name in ("graph", "eager", "tf32"):
    try:
        r = json.load(open(f"{sys.argv[1]}/{name}/results.json"))
        last = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")][-1]
        print(f"{name:<24} {r['test']['mse']:>10.5f} {r['test']['r2']:>9.4f} {last['samples_per_s']:>23.0f}")
    except Exception as e:
        print(f"{name:<24} no result ({e})")
PY
grep -h "training step" "$results/train.log" | sort | uniq -c | tee -a "$summary"
stage "train default (graph, eager, tf32)" $rc
fi

if want intense; then
# InTense on cuda: the graph step and the eager one should give the same scores.
rc=0
for variant in "intense-graph" "intense-eager train.cuda_graphs=false"; do
  read -r name set <<< "$variant"
  echo "-- $name" >> "$results/train.log"
  timeout "$(limit 60)" $bin train --config configs/default.json --set device=cuda --set model.type=intense \
    ${set:+--set $set} --out "$work/$name" >> "$results/train.log" 2>&1 || rc=$?
done
python3 - "$work" <<'PY' | tee -a "$summary"
import json, sys
for name in ("intense-graph", "intense-eager"):
    try:
        r = json.load(open(f"{sys.argv[1]}/{name}/results.json"))
        scores = " ".join(f"{k} {v:.3f}" for k, v in r["relevance"].items())
        print(f"{name:<16} test r2 {r['test']['r2']:.4f}  relevance: {scores}")
    except Exception as e:
        print(f"{name:<16} no result ({e})")
PY
stage "intense on cuda (graph, eager)" $rc
fi

if want explain; then
# explain on cuda: the graph run's model, 65536 pairs (the issue's "seconds on CUDA too").
start=$(date +%s)
timeout "$(limit 60)" $bin explain --checkpoint "$work/graph/checkpoints/best.pt" --device cuda \
  --samples 65536 --bootstrap 20 --out "$work/explain" >> "$results/train.log" 2>&1
rc=$?
grep -A12 "row pairs" "$results/train.log" | tee -a "$summary"
say "explain on cuda: $(( $(date +%s) - start )) s"
stage "explain on cuda" $rc
fi

if want mkl; then
timeout "$(limit 60)" $bin mkl --config configs/default.json --set device=cuda --set mkl.interactions=all \
  --set mkl.kernels.default.gamma_scale=0.5 --out "$work/mkl" > "$results/mkl.log" 2>&1
rc=$?
tail -15 "$results/mkl.log" | tee -a "$summary"
stage "mkl on cuda" $rc
fi

if want suite; then
timeout "$(limit 300)" ctest --test-dir "$build" -E 'Docs.EveryCommandShownRuns' --output-on-failure -j 16 \
  > "$results/ctest.log" 2>&1
rc=$?
grep -E "tests passed|tests failed" "$results/ctest.log" | tee -a "$summary"
grep -A30 "The following tests FAILED" "$results/ctest.log" | tee -a "$summary"
stage "test suite (all but docs commands)" $rc
fi

say ""
say "stage                              result   since start"
for line in "${table[@]}"; do say "$line"; done
