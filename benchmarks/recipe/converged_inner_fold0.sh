#!/usr/bin/env bash
# Choosing the converged BUSI recipe on the inner split of fold 0 (never on a test fold): two long runs, one
# thread each, side by side, every 300 iterations a checkpoint, then each checkpoint evaluated on the inner
# validation images (CorLoc, top-1 CorLoc, AUC, FP per normal image vs iteration).
#   fully_supervised  configs/BUSI/fully_supervised.yaml (EfficientNet-Lite0, ImageNet) at the earlier input size
#                     (short side 320-416, max 576; test 384), 128 RoIs, 500 proposals, cosine from 0.01
#   plain_detectron2  configs/BUSI/plain_detectron2.yaml (Detectron2's DefaultTrainer, R18-FPN from scratch)
# Both on busi_fold0_inner_train_all (every box of the inner training part), MAX_ITER iterations (default 3000).
# Resumable: run it again after a stop (train_net --resume; evaluated checkpoints are not evaluated again).
#   bash benchmarks/recipe/converged_inner_fold0.sh [OUT] [MAX_ITER]
# Needs datasets/busi prepared with --folds 5 (BENCHMARKS.md). The code is this checkout's (PYTHONPATH), so run
# it from a git worktree to keep edits in the working tree out of a long run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT=${1:-output/recipe/inner_fold0}
ITERS=${2:-3000}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::UserWarning}"
PY="$ROOT/.venv/bin/python"
DATA=(DATASETS.TRAIN '("busi_fold0_inner_train_all",)' DATASETS.TEST '("busi_fold0_inner_val",)')
LONG=(SOLVER.MAX_ITER "$ITERS" SOLVER.CHECKPOINT_PERIOD 300 WSSDL.EVAL.COCO False WSSDL.EVAL.PLOTS False)
SIZE=(INPUT.MIN_SIZE_TRAIN '(320,352,384,416)' INPUT.MAX_SIZE_TRAIN 576 INPUT.MIN_SIZE_TEST 384
      INPUT.MAX_SIZE_TEST 576 MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128 MODEL.RPN.POST_NMS_TOPK_TRAIN 500)
mkdir -p "$OUT"
train() {  # name config overrides...
    local name=$1 config=$2; shift 2
    if [[ -f "$OUT/$name/model_final.pth" ]]; then return; fi
    "$PY" tools/train_net.py --resume --config-file "$config" "${DATA[@]}" "${LONG[@]}" "$@" \
        OUTPUT_DIR "$OUT/$name" >> "$OUT/$name.log" 2>&1
}
train fully_supervised configs/BUSI/fully_supervised.yaml "${SIZE[@]}" &
train plain_detectron2 configs/BUSI/plain_detectron2.yaml &
wait
for name in fully_supervised plain_detectron2; do
    "$PY" tools/eval_checkpoints.py "$OUT/$name" --out "$OUT/curve_$name" >> "$OUT/curves.log" 2>&1 &
done
wait
echo "curves: $OUT/curve_*/curve.csv"
