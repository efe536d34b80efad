#!/usr/bin/env bash
# Does the fast 600-iteration BUSI recipe converge, and is it worse than the earlier 1200-iteration
# recipe? On fold 0 of the 5-fold cross-validation (20% boxes), one thread per run:
#   fast-600   the crossval runs themselves (output/crossval/busi/{strong_only_20,wssdl_20}/fold0)
#   fast-1200  the same recipe with twice the iterations (cosine over 1200, alpha STEP 400)
#   old-1200   the earlier recipe: short side 320-416 / 576 (test 384), 128 RoIs, 500 proposals, LR 0.005,
#              warm-up 100, steps at 900, alpha STEP 400, clipping as in every config
# then the validation curves and the paired comparisons. Needs datasets/busi with --folds 5 (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
W='("busi_fold0_train_strong_20","busi_fold0_train_weak_20")'; S='("busi_fold0_train_strong_20",)'
TEST='DATASETS.TEST ("busi_fold0_val",)'
OLD='INPUT.MIN_SIZE_TRAIN (320,352,384,416) INPUT.MAX_SIZE_TRAIN 576 INPUT.MIN_SIZE_TEST 384 INPUT.MAX_SIZE_TEST 576
 MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE 128 MODEL.RPN.POST_NMS_TOPK_TRAIN 500 SOLVER.BASE_LR 0.005
 SOLVER.LR_SCHEDULER_NAME WarmupMultiStepLR SOLVER.WARMUP_ITERS 100 SOLVER.MAX_ITER 1200 SOLVER.STEPS (900,)
 SOLVER.CHECKPOINT_PERIOD 200 WSSDL.MIL.ALPHA.STEP 400 DATALOADER.NUM_WORKERS 1'
FAST1200='SOLVER.MAX_ITER 1200 WSSDL.MIL.ALPHA.STEP 400'
train() { cfg=$1; train=$2; out=$3; shift 3
  .venv/bin/python tools/train_net.py --resume --config-file "$cfg" DATASETS.TRAIN "$train" $TEST "$@" \
    OUTPUT_DIR "$out" > "$out.log" 2>&1; }
mkdir -p output/old_recipe output/fast1200
train configs/BUSI/wssdl.yaml "$W" output/old_recipe/wssdl_20_fold0 $OLD &
train configs/BUSI/strong_only.yaml "$S" output/old_recipe/strong_only_20_fold0 $OLD &
wait
train configs/BUSI/wssdl.yaml "$W" output/fast1200/wssdl_20_fold0 $FAST1200 &
train configs/BUSI/strong_only.yaml "$S" output/fast1200/strong_only_20_fold0 $FAST1200 &
wait
.venv/bin/python tools/eval_checkpoints.py output/old_recipe/wssdl_20_fold0 output/old_recipe/strong_only_20_fold0 \
    --names wssdl-20-old-1200 strong-only-20-old-1200 --out output/curves/old_fold0
.venv/bin/python tools/eval_checkpoints.py output/fast1200/wssdl_20_fold0 output/fast1200/strong_only_20_fold0 \
    --names wssdl-20-fast-1200 strong-only-20-fast-1200 --out output/curves/fast1200_fold0
for row in wssdl_20 strong_only_20; do
  .venv/bin/python tools/compare.py output/crossval/busi/$row/fold0 output/old_recipe/${row}_fold0 --names fast-600 old-1200
  .venv/bin/python tools/compare.py output/fast1200/${row}_fold0 output/old_recipe/${row}_fold0 --names fast-1200 old-1200
  .venv/bin/python tools/compare.py output/fast1200/${row}_fold0 output/crossval/busi/$row/fold0 --names fast-1200 fast-600
done
