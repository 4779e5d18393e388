#!/usr/bin/env bash
# Continue the long-horizon campaign (docs/results/campaign.md) for at most a wall-clock budget,
# then checkpoint: the prepared command for a borrowed accelerator (default 540 s, within a
# 10-minute slot). Its checkpoint continues anywhere else with --resume, the CPU included.
#
#   tools/campaign_continue.sh [CONFIG] [OUT] [SECONDS]
#   defaults: configs/campaign_relative.yaml runs/campaign2 540 (the campaign's phase 2)
#
# A fresh OUT folder is seeded from the committed slim checkpoint and best learner in
# docs/results/campaign2/ (when they exist; CAMPAIGN_SEED_DIR names another folder). Needs `vsml`
# on PATH (or VSML=/path/to/vsml) and, for the campaign's datasets, VSML_DATA_DIR. Exit code 0 when the budget ended the run (a checkpoint
# was written) or the run finished; otherwise vsml meta-train's own code.
set -euo pipefail
config="${1:-configs/campaign_relative.yaml}"
out="${2:-runs/campaign2}"
seconds="${3:-540}"
vsml="${VSML:-vsml}"
seed_dir="${CAMPAIGN_SEED_DIR:-docs/results/campaign2}"

mkdir -p "$out/checkpoints"
resume=()
if compgen -G "$out/checkpoints/ckpt_*.npz" >/dev/null; then
    resume=(--resume)
elif compgen -G "$seed_dir/ckpt_*.npz" >/dev/null; then
    cp "$seed_dir"/ckpt_*.npz "$out/checkpoints/"
    for f in best.npz best.json; do [ -f "$seed_dir/$f" ] && cp "$seed_dir/$f" "$out/"; done
    resume=(--resume)
fi
set +e
"$vsml" meta-train "$config" --out "$out" --no-progress --time-limit "$seconds" "${resume[@]}"
rc=$?
set -e
if [ "$rc" -eq 143 ]; then
    echo "campaign_continue: time budget of $seconds s used; continue with: $0 $config $out" >&2
    exit 0
fi
exit "$rc"
