"""Audit the pseudo boxes of a self-training round against the true boxes, where they are known.

    python tools/audit_pseudo_labels.py output/busi/selftrain_50/round_1/datasets/train_strong.json \\
        --truth datasets/busi/train_all.json [--iou 0.5] [--csv audit.csv]

For every image with ``supervision: "pseudo"`` in the round's dataset file, the best IoU of its pseudo box(es) with
the true boxes of the same image (matched by ``file_name``) in ``--truth`` (a dataset file in which those images
have their boxes, e.g. the prepared ``train_all.json``). Prints how many pseudo boxes hit a true box (IoU >
``--iou``), the median IoU, and the share whose class equals the true box's, overall and per pseudo score
quartile; ``--csv`` writes one row per pseudo box. Details: wssdl_d2/pseudo/audit.py.
"""
import argparse
from typing import Optional, Sequence

from ..pseudo.audit import audit_files, summary, write_audit_csv
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("round_file", help="a self-training round's dataset file (round_<k>/datasets/train_strong.json)")
    parser.add_argument("--truth", required=True, help="dataset file with the true boxes of the same images")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU above which a pseudo box is right (default 0.5)")
    parser.add_argument("--csv", help="write one row per pseudo box here")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> list:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    rows = audit_files(args.round_file, args.truth, args.iou)
    print("\n".join(summary(rows)))
    if args.csv:
        write_audit_csv(args.csv, rows)
    return rows


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, ValueError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
