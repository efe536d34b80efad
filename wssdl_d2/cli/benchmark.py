"""Speed and memory of the joint method against Detectron2's plain Faster R-CNN, side by side in one run.

For one config, the joint model and the plain Faster R-CNN built from it with the same weights: training step
time, inference latency and images/s, peak memory of training and of inference, the training data loader's
throughput against what training consumes, and the evaluation time of the val split. Prints a Markdown table
and writes the JSON result to --out. ``--parts train,infer`` times training and inference only. The parts:
wssdl_d2/benchmark/run.py.

    python tools/benchmark.py --config-file configs/BUSI/wssdl.yaml --dataset busi_train_all \\
        --eval-dataset busi_val --threads 1 --out benchmark_busi.json
"""
import argparse
import json
import os
from typing import Any, Dict, List, Optional

from ..benchmark.report import markdown
from ..benchmark.run import PARTS, run_benchmark
from . import console_command


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command's arguments; a bad ``--parts`` ends with ``parser.error``."""
    parser = argparse.ArgumentParser(description="Speed and memory of the joint method against Detectron2's "
                                     "plain Faster R-CNN, side by side (see wssdl_d2/benchmark/run.py).")
    parser.add_argument("--config-file", default="configs/Phantom/wssdl.yaml")
    parser.add_argument("--dataset", default="", help="registered dataset whose first images with boxes make the "
                        "training batch and the inference images (default: DATASETS.TRAIN[0])")
    parser.add_argument("--eval-dataset", default="", help="split to evaluate (default: DATASETS.TEST[0])")
    parser.add_argument("--device", default="", help="cpu, cuda, cuda:1, ... (default: MODEL.DEVICE)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--reps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps / images per model first")
    parser.add_argument("--infer-images", type=int, default=20, help="timed inference calls per model")
    parser.add_argument("--distinct-images", type=int, default=8, help="images the inference calls cycle through")
    parser.add_argument("--memory-steps", type=int, default=2,
                        help="training steps (or passes over the inference images) per memory measurement")
    parser.add_argument("--memory-jobs", type=int, default=1, help="memory-measuring processes run at once")
    parser.add_argument("--loader-batches", type=int, default=10, help="timed batches of the training loader")
    parser.add_argument("--eval-images", type=int, default=0, help="evaluate only the first N images (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="", help="write the result as JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; choose from {PARTS}")
    if "loader" in args.parts and "train" not in args.parts:
        parser.error("--parts loader compares with the training step: add train")
    return args


def run(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse ``argv``, run the benchmark, print the Markdown table, write ``--out``; returns the result."""
    args = parse_args(argv)
    result = run_benchmark(args)
    print(markdown(result))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run)
