# Sourced by the scripts that set a model's test R^2 beside the truth's best R^2
# (sequence-truth.sh, moment-truth.sh): truth_run DIR LABEL1 LABEL2 --set ... trains
# configs/tiny.json with those settings into DIR, draws the same test split with `synth`
# for its truth, and prints "LABEL1 LABEL2 test_r2 train_seconds best_r2". Sourcing it
# sets $bin (./build/mmfusion) and $work (a scratch folder removed on exit) for the script.
bin=./build/mmfusion
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
truth_run() {
  local dir=$1 first=$2 second=$3
  shift 3
  "$bin" train --config configs/tiny.json --out "$dir" "$@" > /dev/null 2> "$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  "$bin" synth --config configs/tiny.json "$@" --split test --output "$work/t.pt" > /dev/null 2>&1
  /usr/bin/python3 -c 'import json, sys
r, t = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(sys.argv[3], sys.argv[4], "%.3f" % r["test"]["r2"], "%.1f" % r["train_seconds"], "%.3f" % t["best_r2"])' \
    "$dir/results.json" "$work/t.truth.json" "$first" "$second"
  rm -f "$work/t.pt" "$work/t.truth.json"
}
