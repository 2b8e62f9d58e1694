#!/usr/bin/env bash
# What MulT, LMF with LSTM encoders and LMF with mean encoders reach on synthetic data
# where one modality marks a moment and another's content at that moment decides the
# target (data.synthetic.moment; docs/mult.md's table): marker "a" (4 features) and content
# "b" (8 features) of MAX_LEN steps (default 20; rows of half to all of them), fresh
# training rows every epoch (8192 of them, streamed), 30 epochs, seeds 1 to 3. One line per
# run: model, seed, test R^2, training seconds, and the truth's best R^2 (each modality
# alone: 0). MulT runs without and with its causal mask (mult_causal); MODELS picks a few.
# ATTRIBUTE=DIR runs `mmfusion attribute` instead (every subset, seeds 1 to 3, into
# DIR/<model>; MulT's single modalities train its unimodal ablation) and prints its table.
#   usage: [MAX_LEN=20] [MODELS="mult mult_causal lmf_lstm lmf_mean"] [ATTRIBUTE=DIR]
#          scripts/moment-truth.sh [--set KEY=VALUE ...]   (~30 min on 2 cores at 20 steps,
#          ~15 at 8)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/truth-run.sh  # sets $bin and $work
T=${MAX_LEN:-20}
mods="[{\"name\":\"a\",\"dim\":4,\"sequence\":true,\"max_len\":$T},{\"name\":\"b\",\"dim\":8,\"sequence\":true,\"max_len\":$T}]"
declare -A models=(
  [mult]='--set model.type=mult --set model.mult.width=32 --set model.mult.heads=4 --set model.mult.layers=2 --set model.mult.memory_layers=2 --set train.lr=0.001'
  [mult_causal]='--set model.type=mult --set model.mult.width=32 --set model.mult.heads=4 --set model.mult.layers=2 --set model.mult.memory_layers=2 --set model.mult.causal=true --set train.lr=0.001'
  [lmf_lstm]='--set model.type=lmf --set model.encoders={"a":{"type":"lstm","hidden":32},"b":{"type":"lstm","hidden":32}} --set model.rank=8 --set model.fused_dim=32 --set train.lr=0.002'
  [lmf_mean]='--set model.type=lmf --set model.encoders={"a":{"type":"mean","hidden":[32]},"b":{"type":"mean","hidden":[32]}} --set model.rank=8 --set model.fused_dim=32 --set train.lr=0.002'
)
[ -n "${ATTRIBUTE:-}" ] || echo "model seed test_r2 train_seconds best_r2"
for name in ${MODELS:-mult mult_causal lmf_lstm lmf_mean}; do
  for seed in 1 2 3; do
    [ -n "${ATTRIBUTE:-}" ] && [ "$seed" != 1 ] && continue  # attribute trains the 3 seeds
    dir="$work/$name-$seed"
    # shellcheck disable=SC2206
    model=(${models[$name]})
    sets=(--set seed=$seed --set threads=2 --set "data.modalities=$mods" --set data.train_size=8192
          --set data.synthetic.stream=true --set data.val_size=1024 --set data.test_size=2048
          --set data.synthetic.weights=null --set 'data.synthetic.moment={"marker":"a","content":"b"}'
          --set train.epochs=30 --set train.batch_size=64 "${model[@]}" "$@")
    if [ -n "${ATTRIBUTE:-}" ]; then
      echo "== $name"
      "$bin" attribute --config configs/tiny.json --out "$ATTRIBUTE/$name" --seeds 3 \
        "${sets[@]}" 2> "$work/log" || { cat "$work/log" >&2; exit 1; }
      continue
    fi
    truth_run "$dir" "$name" "$seed" "${sets[@]}"
  done
done
