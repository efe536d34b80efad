"""Evaluate every checkpoint a training run saved: the validation curve (CorLoc with CI and AP50 vs iteration).

    python tools/eval_checkpoints.py output/busi_short/strong_only
    python tools/eval_checkpoints.py RUN_A RUN_B DATASETS.TEST "('busi_val',)" --names strong joint --out output/curves

Each RUN is a training output folder: its ``config.yaml`` (written by ``tools/train_net.py``) is the config, and
``model_<iter>.pth`` / ``model_final.pth`` are the checkpoints (the final one is skipped when a periodic checkpoint
of the same iteration exists). Trailing ``KEY VALUE`` pairs override the config as in ``tools/train_net.py``.
Each checkpoint is evaluated on ``DATASETS.TEST`` into ``RUN/curve/iter_<NNNNNNN>/`` (the usual ``inference/``
files plus ``results.json``); a checkpoint already evaluated there is not evaluated again, so the tool resumes.
Writes ``curve.csv`` (one row per run and checkpoint) and ``curve.png`` (CorLoc with 95% bands, one line per run;
with a single run also top-1 CorLoc) into ``--out`` (default: ``RUN/curve`` for a single run).
Details: wssdl_d2/engine/checkpoint_curve.py.
"""
import argparse
import os
from typing import Optional, Sequence

from detectron2.utils.logger import setup_logger

from ..engine.checkpoint_curve import checkpoint_curves
from ..evaluation.runs import distinct_names
from . import console_command, split_trailing_opts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="training output folders (holding config.yaml and model_*.pth), "
                        "then optional KEY VALUE config overrides")
    parser.add_argument("--names", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--out", help="folder for curve.csv / curve.png (default RUN/curve for one run)")
    args = split_trailing_opts(parser.parse_args(argv), "runs")  # runs holds the folders, then the KEY VALUE pairs
    missing = [f for f in args.runs if not os.path.isdir(f)]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)} (config overrides are KEY VALUE pairs after the folders)")
    if len(args.opts) % 2:
        parser.error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    if args.names and len(args.names) != len(args.runs):
        parser.error(f"--names gives {len(args.names)} names for {len(args.runs)} runs")
    if args.out is None and len(args.runs) > 1:
        parser.error("--out is needed when several runs are given")
    return args


def run(argv: Optional[Sequence[str]] = None) -> list:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    setup_logger(name="wssdl_d2")
    setup_logger()
    names = distinct_names(args.names or [os.path.basename(os.path.normpath(r)) for r in args.runs])
    out = args.out or os.path.join(args.runs[0], "curve")
    rows = checkpoint_curves(dict(zip(names, args.runs)), out, args.opts)
    print(f"wrote {os.path.join(out, 'curve.csv')} and curve.png")
    return rows


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, ValueError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
