"""The paper-style results table of several evaluated runs, each paired against a reference run.

    python tools/results_table.py --reference wssdl \\
        strong_only=output/busi_short/strong_only wssdl=output/busi_short/wssdl ... [--json table.json]
    python tools/results_table.py --reference wssdl ... --plot-boxes corloc_vs_boxes.png \\
        --series strong-only strong_only_10 strong_only fully_supervised --series wssdl wssdl_10 wssdl

Each ``NAME=RUN`` is a run folder (or its ``inference/`` folder) evaluated with ``WSSDL.EVAL.CORLOC``. One row per
run: CorLoc (the authors' definition) and top-1 CorLoc with 95% CI, AP50 (the last ``bbox/AP50`` in the run's
``metrics.json``, or its ``results.json`` from tools/eval_checkpoints.py), AUC benign vs malignant with CI, FP per
normal image, and the paired comparison with the reference on the same images (CorLoc difference, paired-bootstrap
p and McNemar's exact p, as tools/compare.py computes them). Prints a Markdown table.

``--plot-boxes PNG`` with ``--series LABEL NAME [NAME ...]`` (repeatable) plots CorLoc with its CI band against the
number of images with human-drawn boxes each run trained on: counted from the run's ``config.yaml``
(``DATASETS.TRAIN``, images with ``supervision`` "strong"; pseudo-labelled images do not count), or given as
``NAME=RUN:BOXES``.
"""
import argparse
from typing import Optional, Sequence

from ..evaluation.comparison import boxes_series, reference_rows
from ..evaluation.curves import plot_series
from ..evaluation.results_io import ResultsError, json_safe
from ..evaluation.tables import results_table
from ..utils.atomic import atomic_write_json
from . import console_command


def parse_run(text):
    """``NAME=RUN`` or ``NAME=RUN:BOXES`` -> (name, folder, boxes or None)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=RUN_FOLDER")
    name, folder = text.split("=", 1)
    head, sep, tail = folder.rpartition(":")
    return (name, head, int(tail)) if sep and tail.isdigit() else (name, folder, None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=parse_run, help="NAME=RUN_FOLDER[:BOXES]")
    parser.add_argument("--reference", required=True, help="the NAME every other row is paired against")
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument("--plot-boxes", help="PNG of CorLoc vs number of boxed training images")
    parser.add_argument("--series", nargs="+", action="append", default=[], metavar="LABEL NAME",
                        help="a line of --plot-boxes: its label, then run NAMEs (repeatable)")
    args = parser.parse_args(argv)
    names = [name for name, _, _ in args.runs]
    if len(set(names)) != len(names):
        parser.error(f"run names must be unique: {names}")
    if args.reference not in names:
        parser.error(f"--reference {args.reference!r} is not one of the runs {names}")
    for series in args.series:
        unknown = [n for n in series[1:] if n not in names]
        if len(series) < 2 or unknown:
            parser.error(f"--series {' '.join(series)}: needs a label and run names among {names}")
    if args.series and not args.plot_boxes:
        parser.error("--series needs --plot-boxes")
    return args


def run(argv: Optional[Sequence[str]] = None) -> list:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    rows = reference_rows(args.runs, args.reference, args.samples, args.seed)
    print(results_table(rows, args.reference))
    if args.plot_boxes:
        plot_series(boxes_series(rows, args.series), args.plot_boxes,
                    xlabel="training images with boxes drawn by a person", title="CorLoc vs boxed images (95% CI)")
        print("wrote", args.plot_boxes)
    if args.json:
        atomic_write_json(args.json, json_safe(rows), indent=1)
    return rows


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (ResultsError,)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
