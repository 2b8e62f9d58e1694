# The synthetic data of docs/experiments.md sections 7 to 9, sourced by
# explain-experiments.sh, intense-experiments.sh and mkl-interactions.sh: four target
# structures (data.synthetic.terms) on independent modalities, and the data settings they
# share (latent_dim 2, 4096 test rows).
# shellcheck shell=bash
declare -A structures=(
  [additive]='[{"modalities":["visual"]},{"modalities":["audio"]},{"modalities":["text"]}]'
  [pairs]='[{"modalities":["visual","audio"]},{"modalities":["visual","text"]},{"modalities":["audio","text"]}]'
  [triple]='[{"modalities":["visual","audio","text"]}]'
  [mixed]='[{"modalities":["visual"],"weight":1},{"modalities":["audio"],"weight":0.7},{"modalities":["visual","audio"],"weight":1}]'
)
# shellcheck disable=SC2034  # used by the scripts that source this file
structure_data=(--set data.synthetic.weights=null --set data.synthetic.shared_latent_dim=0
                --set data.synthetic.latent_dim=2 --set data.test_size=4096)
