#!/usr/bin/env bash
# The quickstart's pair (strong-only and the joint method) trained from several seeds and thread counts, to show
# how far its result depends on the seed and on the float kernels (a CPU of another kind sums in another order;
# a second thread per run does too). Each pair trains side by side, as tools/quickstart.sh does, then
# tools/compare.py writes <out>/t<threads>_s<seed>/comparison.json; summarize_seeds.py makes the table.
#
#   bash benchmarks/quickstart/run_seeds.sh OUT "0 1 2 3 4 5 6 7" "1 2" [STRONG_CONFIG JOINT_CONFIG [KEY VALUE ...]]
#
# The dataset is tools/quickstart.sh's (datasets/phantom_quickstart; made by it, or by this script when missing).
# The code is this checkout's (PYTHONPATH), so a run in a separate git worktree is not disturbed by edits here.
# A pair whose comparison.json exists is skipped, so a stopped run continues where it stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT=$1; SEEDS=$2; THREADS=$3
STRONG=${4:-configs/Phantom/quickstart_strong_only.yaml}
JOINT=${5:-configs/Phantom/quickstart_wssdl.yaml}
shift $(( $# < 5 ? $# : 5 ))
EXTRA=("$@")
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's wssdl_d2, whatever .venv has installed
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::UserWarning}"
export WSSDL_DATASETS="${WSSDL_DATASETS:-$ROOT/datasets}"
# the phantom as tools/quickstart.sh makes it (PHANTOM_ARGS: another one, in another WSSDL_DATASETS, for screening)
PHANTOM_ARGS=${PHANTOM_ARGS:-$(sed -n "s/^PHANTOM_ARGS=\"\(.*\)\"$/\1/p" tools/quickstart.sh)}
if [[ ! -f "$WSSDL_DATASETS/phantom_quickstart/val.json" ]]; then
    "$PY" tools/make_phantom.py --out "$WSSDL_DATASETS/phantom_quickstart" $PHANTOM_ARGS --overwrite | tail -2
fi
for threads in $THREADS; do
    for seed in $SEEDS; do
        dir="$OUT/t${threads}_s${seed}"
        [[ -f "$dir/comparison.json" ]] && continue
        mkdir -p "$dir"
        start=$(date +%s)
        for pair in "strong_only $STRONG" "joint $JOINT"; do
            set -- $pair
            rm -rf "$dir/$1"
            OMP_NUM_THREADS=$threads "$PY" tools/train_net.py --config-file "$2" SEED "$seed" "${EXTRA[@]}" \
                OUTPUT_DIR "$dir/$1" > "$dir/$1.log" 2>&1 &
        done
        wait
        "$PY" tools/compare.py "$dir/joint" "$dir/strong_only" --names joint strong-only \
            --json "$dir/comparison.json" > "$dir/compare.txt"
        echo "threads $threads seed $seed: $(( $(date +%s) - start )) s; $(grep '^| CorLoc  ' "$dir/compare.txt")"
        rm -f "$dir"/*/model_0*.pth
    done
done
