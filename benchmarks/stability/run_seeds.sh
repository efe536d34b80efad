#!/usr/bin/env bash
# Trains CONFIG for ITERS iterations (the quickstart's schedule: LR drop at 3/4) once per seed, with and without
# gradient clipping, and prints whether each run finished or diverged (the iteration of Detectron2's NaN error).
#   bash benchmarks/stability/run_seeds.sh configs/Phantom/strong_only.yaml 300 "1 2 3" OUT
set -uo pipefail
mkdir -p "$4"
CONFIG=$1; ITERS=$2; SEEDS=$3; OUT=$4
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export WSSDL_DATASETS="${WSSDL_DATASETS:-$ROOT/datasets}" PYTHONWARNINGS=ignore::FutureWarning
for clip in False True; do
  for seed in $SEEDS; do
    dir="$OUT/clip_${clip}_seed_$seed"
    "$ROOT/.venv/bin/python" "$ROOT/tools/train_net.py" --config-file "$CONFIG" SEED "$seed" \
        SOLVER.CLIP_GRADIENTS.ENABLED "$clip" SOLVER.MAX_ITER "$ITERS" SOLVER.STEPS "($((ITERS * 3 / 4)),)" \
        SOLVER.CHECKPOINT_PERIOD 100000 DATASETS.TEST "()" OUTPUT_DIR "$dir" > "$dir.log" 2>&1
    rc=$?
    diverged=$(grep -oE "at iteration=?[ 0-9]+" "$dir.log" | head -1)
    echo "$CONFIG clip=$clip seed=$seed exit=$rc ${diverged:-finished}"
  done
done
