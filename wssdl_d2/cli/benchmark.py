"""Speed and memory of the joint method against Detectron2's plain Faster R-CNN, side by side in one run.

For one config, the joint model and the plain Faster R-CNN built from it with the same weights: training step
time, inference latency and images/s, peak memory of training and of inference, the training data loader's
throughput against what training consumes, and the evaluation time of the val split. Prints a Markdown table
and writes the JSON result to --out. ``--parts train,infer`` times training and inference only. Details:
wssdl_d2/benchmark/run.py.

    python tools/benchmark.py --config-file configs/BUSI/wssdl.yaml --dataset busi_train_all \\
        --eval-dataset busi_val --threads 1 --out benchmark_busi.json
"""
from typing import Optional, Sequence

from ..benchmark.run import main as run
from . import run_main


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``): :func:`wssdl_d2.benchmark.run.main`; a user's
    mistake ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`).
    Returns 0."""
    run_main(run, argv)
    return 0
