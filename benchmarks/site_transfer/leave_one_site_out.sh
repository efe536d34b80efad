#!/usr/bin/env bash
# Leave-one-site-out, both ways, with the converged recipe (configs/BUSI/fully_supervised.yaml at short side
# 320-416, max 576, test 384; 128 RoIs, 500 proposals; cosine from 0.01 over MAX_ITER iterations of 2 images):
#   busi_to_breast  trained on every BUSI pool image (busi_pool_train_strong_100: 503 with a box, 104 normal),
#                   tested on every BrEaST scan (breast_test, 256 scans, 252 with a lesion)
#   breast_to_busi  trained on every BrEaST scan (breast_test), tested on every BUSI pool image
# One thread per run, the two side by side. Resumable (train_net --resume); an evaluation already written is kept.
#   bash benchmarks/site_transfer/leave_one_site_out.sh [OUT] [MAX_ITER] [-- EXTRA OVERRIDES...]
# Needs datasets/busi_pool and datasets/breast (docs/DATA.md). Run it from a git worktree to keep later edits out.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
OUT=${1:-output/site_transfer}
ITERS=${2:-3000}
shift $(( $# < 2 ? $# : 2 ))
[[ "${1:-}" == "--" ]] && shift
EXTRA=("$@")
CONFIG=configs/BUSI/fully_supervised.yaml
RECIPE=(SOLVER.MAX_ITER "$ITERS" SOLVER.CHECKPOINT_PERIOD 300 WSSDL.EVAL.COCO False WSSDL.EVAL.PLOTS False
        INPUT.MIN_SIZE_TRAIN '(320,352,384,416)' INPUT.MAX_SIZE_TRAIN 576 INPUT.MIN_SIZE_TEST 384
        INPUT.MAX_SIZE_TEST 576 MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128 MODEL.RPN.POST_NMS_TOPK_TRAIN 500)
mkdir -p "$OUT"
direction() {  # name train_dataset test_dataset
    local name=$1 train=$2 test=$3 run="$OUT/$1"
    if [[ ! -f "$run/model_final.pth" ]]; then
        "$PY" tools/train_net.py --resume --config-file "$CONFIG" DATASETS.TRAIN "('$train',)" \
            DATASETS.TEST "('$test',)" "${RECIPE[@]}" "${EXTRA[@]}" OUTPUT_DIR "$run" >> "$run.log" 2>&1
    fi
    if [[ ! -f "$run/test_$test/inference/corloc_per_image.csv" ]]; then
        "$PY" tools/train_net.py --eval-only --config-file "$CONFIG" DATASETS.TEST "('$test',)" "${RECIPE[@]}" \
            "${EXTRA[@]}" MODEL.WEIGHTS "$run/model_final.pth" OUTPUT_DIR "$run/test_$test" >> "$run.log" 2>&1
    fi
}
direction busi_to_breast busi_pool_train_strong_100 breast_test &
direction breast_to_busi breast_test busi_pool_train_strong_100 &
wait
echo "results: $OUT/*/test_*/inference/"
