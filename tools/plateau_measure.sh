#!/usr/bin/env bash
# The chance plateau from random parameters, with and without the published fixes (docs/meta_training.md,
# "The chance plateau"): 2-way 30-step episodes of configs/meta_lodo_cpu.yaml's projected MNIST /
# Fashion-MNIST / random mixture, gradient meta-training, 600 iterations, meta-tested every 25 iterations
# on projected 2-way MNIST test episodes (the projected tasks alone). Usage:
#   VSML_DATA_DIR=/path/to/data tools/plateau_measure.sh OUT [SEED ...]      # then: python tools/plateau_summary.py OUT
# ~5 min per variant on one core.
set -euo pipefail
out="${1:?usage: tools/plateau_measure.sh OUT [SEED ...]}"; shift
seeds=("${@:-0}")
base=(iterations=600 'curriculum=[]' data.num_classes=2 data.steps=30 log.every=1 log.progress=false log.tensorboard=false
      checkpoint.every=1000 eval.every=25 eval.episodes=32 eval.steps=30 eval.classes=2 eval.first=10 eval.last=10
      'eval.datasets=[{name: mnist, split: test}]' 'eval.sampler={projection: episode}')
fixed='families=[{}, {datasets: [{name: mnist, classes: [0, 1]}], projection: none, num_classes: null}]'
declare -A variants=(
  [baseline]="gradient.meta_batch=16"
  [eps1e-14]="gradient.meta_batch=16 gradient.eps=1e-14"
  [batch32]="gradient.meta_batch=32"
  [fixed_8+8]="gradient.meta_batch=8 FIXED"
  [fixed_16+16]="gradient.meta_batch=16 FIXED"
)
for seed in "${seeds[@]}"; do
  for name in baseline eps1e-14 batch32 fixed_8+8 fixed_16+16; do
    args=()
    for a in ${variants[$name]}; do
      if [ "$a" = FIXED ]; then args+=("$fixed"); else args+=("$a"); fi
    done
    vsml meta-train configs/meta_lodo_cpu.yaml "${base[@]}" seed="$seed" "${args[@]}" --out "$out/${name}_s$seed" \
      > "$out/${name}_s$seed.log" 2>&1 || { echo "failed: $out/${name}_s$seed.log" >&2; exit 1; }
  done
done
