"""An HTML page (with PNGs) summarising one or several evaluated runs.

    python tools/report.py output/phantom/strong_only --out output/report
    python tools/report.py RUN_A RUN_B RUN_C --names strong joint full --examples 16 --out output/report

Each RUN is a run folder, its ``inference/`` folder or a file in it, as written by ``tools/train_net.py
--eval-only`` with ``WSSDL.EVAL.CORLOC``. Writes into ``--out``: ``index.html`` (metrics table of all runs with
confidence intervals, links to everything), ``corloc.png`` (CorLoc with CI bars, all runs in one figure),
``froc.png``, ``roc.png`` and ``examples_<run>.png`` (the same test images for every run: ground truth in
green, detections with score >= tau dashed with class and score).
"""
import argparse
from typing import Optional, Sequence

from ..evaluation.html_report import write_report
from ..evaluation.results_io import ResultsError
from ..evaluation.runs import distinct_names, load_run, run_name
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (or their inference/ folders)")
    parser.add_argument("--out", required=True, help="folder for index.html and the PNGs")
    parser.add_argument("--names", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--examples", type=int, default=12, help="example images per run (0: none)")
    args = parser.parse_args(argv)
    if args.names and len(args.names) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(args.names)} --names")
    return args


def run(argv: Optional[Sequence[str]] = None) -> str:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    runs = [load_run(path) for path in args.runs]
    names = distinct_names(args.names or [run_name(run["folder"]) for run in runs])
    index = write_report(dict(zip(names, runs)), args.out, args.examples)
    print("wrote", index)
    return index


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (ResultsError, FileNotFoundError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
