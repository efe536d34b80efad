"""CPU cost of detectors that differ in their backbone: training seconds per iteration and inference images/s.

    python tools/benchmark_backbones.py configs/BUSI/strong_only_r18.yaml configs/BUSI/strong_only.yaml \\
        --train-iters 12 --images 24 --size 384

Every config gets the same images at the same size; the models take their steps in turn, so load from other
processes on a shared machine slows them alike. The first ``--warmup`` steps / images of each model are not
counted; the median step time and images/s are reported, for the full detector and for the backbone + FPN
forward alone. Details: wssdl_d2/benchmark/backbones.py.
"""
import argparse
import json
import os
from typing import Optional, Sequence

import torch

from ..benchmark.backbones import benchmark_backbones, markdown
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--train-iters", type=int, default=12, help="training steps per model, warm-up included")
    parser.add_argument("--images", type=int, default=24, help="inference images per model, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=384, help="shortest image edge for training and inference")
    parser.add_argument("--json", default="", help="also write the results here")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides for every config")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> list:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    results = benchmark_backbones(args.configs, args.train_iters, args.images, args.warmup, args.size, args.opts)
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, size {args.size}")
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, ValueError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
