#!/usr/bin/env bash
# Five-fold cross-validation of the converged recipe against Detectron2 itself, over the BUSI pool's honest folds:
#   fully_supervised  configs/BUSI/fully_supervised.yaml (EfficientNet-Lite0, ImageNet; the recipe of Base-BUSI.yaml)
#   plain_detectron2  configs/BUSI/plain_detectron2.yaml (Detectron2's DefaultTrainer, stock Faster R-CNN)
# every box of each fold's training part, tested on the held-out fold and zero-shot on BrEaST (breast_test);
# then every fully_supervised fold model again with WSSDL.TEST.DETECTION_SCORE mass (row fully_supervised_mass),
# and one paired report of the three rows. Two runs at a time, one thread each; resumable (a finished run is
# never trained again). Needs datasets/busi (--folds 5) and datasets/breast (docs/DATA.md); run it from a git
# worktree to keep later edits out of the runs.
#   bash benchmarks/recipe/crossval_recipe.sh [OUT] [FOLD ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
OUT=${1:-output/crossval/recipe}
shift || true
FOLDS=("${@:-0 1 2 3 4}")
"$PY" tools/crossval.py --data busi --only-folds ${FOLDS[*]} --jobs 2 --external breast_test --out "$OUT" \
    --configs fully_supervised=configs/BUSI/fully_supervised.yaml plain_detectron2=configs/BUSI/plain_detectron2.yaml \
    WSSDL.EVAL.COCO False WSSDL.EVAL.PLOTS False
for k in ${FOLDS[*]}; do
    dir="$OUT/fully_supervised_mass/fold$k"
    [[ -f "$dir/inference/corloc_per_image.csv" ]] && continue
    OMP_NUM_THREADS=2 "$PY" tools/train_net.py --eval-only --config-file configs/BUSI/fully_supervised.yaml \
        DATASETS.TEST "('busi_fold${k}_val',)" WSSDL.TEST.DETECTION_SCORE mass WSSDL.EVAL.COCO False \
        WSSDL.EVAL.PLOTS False MODEL.WEIGHTS "$OUT/fully_supervised/fold$k/model_final.pth" OUTPUT_DIR "$dir" \
        >> "$OUT/fully_supervised_mass.log" 2>&1
done
"$PY" tools/crossval.py --data busi --only-folds ${FOLDS[*]} --out "$OUT" --report recipe \
    --configs fully_supervised=configs/BUSI/fully_supervised.yaml plain_detectron2=configs/BUSI/plain_detectron2.yaml \
    --rows "fully_supervised_mass=$OUT/fully_supervised_mass/fold{fold}" WSSDL.EVAL.COCO False WSSDL.EVAL.PLOTS False
echo "report: $OUT/recipe.md"
