#!/usr/bin/env bash
# Seconds per training iteration of the fast BUSI recipe (configs/BUSI/Base-BUSI.yaml) with one
# lever changed at a time. wssdl on BUSI fold 0 (20% boxes), one thread, 40 iterations each, no evaluation;
# metrics.json's 'time' at iteration 39 is the median of iterations 20-39. The unchanged recipe ('base_*') runs
# between the levers to show the machine's drift. Needs datasets/busi with --folds 5 (BENCHMARKS.md).
# Usage: bash benchmarks/recipe/time_levers.sh [OUT]   (default output/levers; prints 'name seconds' lines)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-output/levers}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
W='("busi_fold0_train_strong_20","busi_fold0_train_weak_20")'; S='("busi_fold0_train_strong_20",)'
OLDIN='INPUT.MIN_SIZE_TRAIN (320,352,384,416) INPUT.MAX_SIZE_TRAIN 576'
OLDRPN='MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128 MODEL.RPN.POST_NMS_TOPK_TRAIN 500'
run() { name=$1; cfg=$2; train=$3; shift 3
  rm -rf "$OUT/$name"
  .venv/bin/python tools/train_net.py --config-file "$cfg" DATASETS.TRAIN "$train" DATASETS.TEST "()" \
    SOLVER.MAX_ITER 40 SOLVER.CHECKPOINT_PERIOD 100000 OUTPUT_DIR "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
  echo "$name $(tail -1 "$OUT/$name/metrics.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["time"])')"
}
mkdir -p "$OUT"
run base_1 configs/BUSI/wssdl.yaml "$W"
run input_old configs/BUSI/wssdl.yaml "$W" $OLDIN
run rois_128 configs/BUSI/wssdl.yaml "$W" MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128
run base_2 configs/BUSI/wssdl.yaml "$W"
run post_nms_500 configs/BUSI/wssdl.yaml "$W" MODEL.RPN.POST_NMS_TOPK_TRAIN 500
run mil_bag_64 configs/BUSI/wssdl.yaml "$W" WSSDL.MIL.MAX_PROPOSALS 64
run base_3 configs/BUSI/wssdl.yaml "$W"
run workers_0 configs/BUSI/wssdl.yaml "$W" DATALOADER.NUM_WORKERS 0
run old_all configs/BUSI/wssdl.yaml "$W" $OLDIN $OLDRPN
run base_4 configs/BUSI/wssdl.yaml "$W"
run so_base configs/BUSI/strong_only.yaml "$S"
run so_old_all configs/BUSI/strong_only.yaml "$S" $OLDIN $OLDRPN
run base_5 configs/BUSI/wssdl.yaml "$W"
run input_old_b configs/BUSI/wssdl.yaml "$W" $OLDIN
run base_6 configs/BUSI/wssdl.yaml "$W"
run rois_128_b configs/BUSI/wssdl.yaml "$W" MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128
run base_7 configs/BUSI/wssdl.yaml "$W"
