#!/usr/bin/env bash
# What each sequence encoder reaches on synthetic data whose structure is all temporal or
# all static (docs/sequences.md's table; the SequenceTruth tests check the same settings):
# two sequence modalities of 6 features and up to 10 steps, their unimodal and bimodal
# terms, 4096 training rows, 25 epochs. One line per run: structure, encoder, test R^2,
# training seconds, and the truth's best R^2.
#   usage: scripts/sequence-truth.sh [--set KEY=VALUE ...]     (~1 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/truth-run.sh  # sets $bin and $work
mods='[{"name":"a","dim":6,"sequence":true,"max_len":10},{"name":"b","dim":6,"sequence":true,"max_len":10}]'
declare -A encoders=(
  [mean]='{"type":"mean","hidden":[16]}'
  [lstm]='{"type":"lstm","hidden":16}'
  [transformer]='{"type":"transformer","width":16,"heads":2,"ff":32,"dropout":0}'
)
echo "structure encoder test_r2 train_seconds best_r2"
for temporal in 1 0; do
  structure=$([ "$temporal" = 1 ] && echo temporal || echo static)
  for name in mean lstm transformer; do
    e=${encoders[$name]}
    dir="$work/$structure-$name"
    sets=(--set threads=2 --set "data.modalities=$mods" --set data.train_size=4096
          --set data.val_size=512 --set data.test_size=1024 --set data.synthetic.latent_dim=2
          --set data.synthetic.shared_latent_dim=0 --set data.synthetic.weights.trimodal=0
          --set data.synthetic.temporal=$temporal --set "model.encoders={\"a\":$e,\"b\":$e}"
          --set model.rank=4 --set model.fused_dim=8 --set train.epochs=25 --set train.lr=0.003
          --set train.batch_size=64 "$@")
    truth_run "$dir" "$structure" "$name" "${sets[@]}"
  done
done
