#!/usr/bin/env bash
# Trains the shipped models with the converged recipe, one thread each, side by side, resumable:
#   default  configs/BUSI_BrEaST/fully_supervised.yaml: every boxed image of the BUSI pool and of BrEaST
#   wssdl    configs/BUSI/wssdl.yaml on the BUSI pool: 20% of its images with boxes, the rest with a diagnosis only
# then MODEL_ZOO.md's tools/publish_model.py --ship writes the files. Needs datasets/busi_pool and
# datasets/breast_pool (docs/DATA.md). Run it from a git worktree to keep later edits out of the runs.
#   bash benchmarks/ship/train_shipped.sh [OUT] [which: default wssdl]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
OUT=${1:-output/ship}
shift || true
WHICH=("${@:-default wssdl}")
mkdir -p "$OUT"
train() {  # name config overrides...
    local name=$1 config=$2; shift 2
    if [[ -f "$OUT/$name/model_final.pth" ]]; then return; fi
    "$PY" tools/train_net.py --resume --config-file "$config" DATASETS.TEST "()" WSSDL.EVAL.COCO False \
        "$@" OUTPUT_DIR "$OUT/$name" >> "$OUT/$name.log" 2>&1
}
for which in ${WHICH[*]}; do
    case "$which" in
    default) train default configs/BUSI_BrEaST/fully_supervised.yaml & ;;
    wssdl) train wssdl configs/BUSI/wssdl.yaml \
               DATASETS.TRAIN "('busi_pool_train_strong_20', 'busi_pool_train_weak_20')" & ;;
    *) echo "unknown model $which (default, wssdl)" >&2; exit 2 ;;
    esac
done
wait
