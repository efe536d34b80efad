"""Audit a mean-teacher run's pseudo boxes on weak images whose true boxes are known (pseudo-box precision per class).

    python tools/audit_teacher.py --config-file configs/BUSI/wssdl_teacher.yaml --weak busi_train_weak_20 \\
        --truth busi_train_all [--csv audit.csv] MODEL.WEIGHTS output/busi/wssdl_teacher/model_final.pth

The checkpoint's teacher (the student with ``WSSDL.TEACHER.EVAL_WITH student``) labels the images of the dataset
``--weak`` by the config's pseudo-box rule and the bars its run had reached; each pseudo box is matched to the true
boxes of the same image in ``--truth`` (a registered dataset holding them, e.g. ``<name>_train_all``). Prints the
share of pseudo boxes that hit a true box (IoU > 0.5), the median IoU and the class agreement, overall, per score
quartile and per pseudo-box class. Details: wssdl_d2/teacher/audit.py.
"""
import argparse
from typing import Optional, Sequence

from ..config import load_config
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the teacher run's config")
    parser.add_argument("--weak", required=True, help="registered dataset of the weak images to label")
    parser.add_argument("--truth", required=True, help="registered dataset with the true boxes of those images")
    parser.add_argument("--csv", help="write one row per pseudo box here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides (MODEL.WEIGHTS ...)")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> list:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    from detectron2.data import DatasetCatalog

    from ..pseudo.audit import audit, write_audit_csv
    from ..teacher.audit import class_summary, teacher_pseudo_records

    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    records = teacher_pseudo_records(cfg, DatasetCatalog.get(args.weak))
    rows = audit(records, DatasetCatalog.get(args.truth))
    print("\n".join(class_summary(rows)))
    if args.csv:
        write_audit_csv(args.csv, rows)
    return rows


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, ValueError, KeyError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
