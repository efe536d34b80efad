#!/usr/bin/env bash
# The main job, from a fresh clone: set up, make the data, train a short model, evaluate it, print the results.
#
#   bash tools/quickstart.sh                                   # synthetic phantom (generated here), ~10 min on 2 CPU cores
#   BUSI_ROOT=/path/to/Dataset_BUSI_with_GT bash tools/quickstart.sh   # the same on BUSI
#
# Environment knobs: CONFIG (a config file), ITERS (training iterations), OUT (output folder).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
export WSSDL_DATASETS="$ROOT/datasets"

if [[ -n "${BUSI_ROOT:-}" ]]; then
    echo "[quickstart] preparing BUSI from $BUSI_ROOT"
    "$PY" tools/prepare_busi.py --root "$BUSI_ROOT" --out datasets/busi --strong-fraction 0.1 0.2 1.0 --seed 0
    DATA=BUSI
    ITERS="${ITERS:-300}"
else
    if [[ ! -f datasets/phantom/val.json ]]; then
        echo "[quickstart] generating the phantom dataset in datasets/phantom"
        "$PY" tools/make_phantom.py --out datasets/phantom --counts 40 80 80 --seed 0 --overwrite
    else
        echo "[quickstart] reusing the phantom dataset in datasets/phantom"
    fi
    DATA=Phantom
    ITERS="${ITERS:-300}"
fi
CONFIG="${CONFIG:-configs/$DATA/strong_only.yaml}"
NAME="$(basename "$CONFIG" .yaml)"
OUT="${OUT:-output/quickstart/${DATA,,}_$NAME}"

mkdir -p "$(dirname "$OUT")"
echo "[quickstart] training $CONFIG for $ITERS iterations -> $OUT"
start=$(date +%s)
"$PY" tools/train_net.py --config-file "$CONFIG" SOLVER.MAX_ITER "$ITERS" \
    SOLVER.STEPS "($((ITERS * 3 / 4)),)" SOLVER.CHECKPOINT_PERIOD 100 OUTPUT_DIR "$OUT" 2>&1 | tee "$OUT.train.log" >/dev/null || {
    echo "[quickstart] training failed; log: $OUT.train.log" >&2; tail -30 "$OUT.train.log" >&2; exit 1; }
trained=$(date +%s)
echo "[quickstart] trained in $((trained - start)) s; evaluating"
"$PY" tools/train_net.py --config-file "$CONFIG" --eval-only MODEL.WEIGHTS "$OUT/model_final.pth" OUTPUT_DIR "$OUT" \
    2>&1 | tee "$OUT.eval.log" | grep -E "copypaste|CorLoc|corloc|AUC|FP per|^\|" || true
echo "[quickstart] evaluated in $(($(date +%s) - trained)) s"
echo "[quickstart] outputs: $OUT (model_final.pth, metrics.json, inference/), logs: $OUT.train.log, $OUT.eval.log"
