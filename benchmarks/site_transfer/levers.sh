#!/usr/bin/env bash
# Inference levers on the leave-one-site-out models of leave_one_site_out.sh, each on its own, both directions:
#   mass  WSSDL.TEST.DETECTION_SCORE mass (a detection scored by its mass probability; the class is the diagnosis)
#   flip  TEST.AUG: the image and its mirror, detections merged by NMS (Detectron2's GeneralizedRCNNWithTTA)
#   mass_flip  both
# Writes <run>/test_<dataset>_<lever>/inference/ beside the plain evaluation (test_<dataset>); compare with
#   .venv/bin/python tools/compare.py <run>/test_<dataset>_<lever> <run>/test_<dataset>
#   bash benchmarks/site_transfer/levers.sh [OUT] [LEVER ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
OUT=${1:-output/site_transfer}
shift || true
LEVERS=("${@:-mass flip}")
CONFIG=configs/BUSI/fully_supervised.yaml
TEST_SIZE=(INPUT.MIN_SIZE_TEST 384 INPUT.MAX_SIZE_TEST 576 WSSDL.EVAL.COCO False WSSDL.EVAL.PLOTS False
           MODEL.ROI_HEADS.NAME WSSDLROIHeads)
MASS=(WSSDL.TEST.DETECTION_SCORE mass)
FLIP=(TEST.AUG.ENABLED True TEST.AUG.MIN_SIZES '(384,)' TEST.AUG.MAX_SIZE 576 TEST.AUG.FLIP True)
evaluate() {  # run test_dataset lever
    local run=$1 test=$2 lever=$3 extra=()
    case "$lever" in
    mass) extra=("${MASS[@]}") ;;
    flip) extra=("${FLIP[@]}") ;;
    mass_flip) extra=("${MASS[@]}" "${FLIP[@]}") ;;
    *) echo "unknown lever $lever (mass, flip, mass_flip)" >&2; exit 2 ;;
    esac
    local dir="$run/test_${test}_$lever"
    [[ -f "$dir/inference/corloc_per_image.csv" ]] && return
    "$PY" tools/train_net.py --eval-only --config-file "$CONFIG" DATASETS.TEST "('$test',)" "${TEST_SIZE[@]}" \
        "${extra[@]}" MODEL.WEIGHTS "$run/model_final.pth" OUTPUT_DIR "$dir" >> "$run.levers.log" 2>&1
}
for lever in ${LEVERS[*]}; do
    evaluate "$OUT/busi_to_breast" breast_test "$lever" &
    evaluate "$OUT/breast_to_busi" busi_pool_train_strong_100 "$lever" &
    wait
done
