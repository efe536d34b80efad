#!/usr/bin/env python
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

from wssdl_d2.config import load_config
from wssdl_d2.cli import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the teacher run's config")
    parser.add_argument("--weak", required=True, help="registered dataset of the weak images to label")
    parser.add_argument("--truth", required=True, help="registered dataset with the true boxes of those images")
    parser.add_argument("--csv", help="write one row per pseudo box here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides (MODEL.WEIGHTS ...)")
    return parser.parse_args(argv)


def main(argv=None):
    from detectron2.data import DatasetCatalog

    from wssdl_d2.pseudo.audit import audit, write_audit_csv
    from wssdl_d2.teacher.audit import class_summary, teacher_pseudo_records

    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    records = teacher_pseudo_records(cfg, DatasetCatalog.get(args.weak))
    rows = audit(records, DatasetCatalog.get(args.truth))
    print("\n".join(class_summary(rows)))
    if args.csv:
        write_audit_csv(args.csv, rows)
    return rows


if __name__ == "__main__":
    run_main(main, errors=(FileNotFoundError, ValueError, KeyError))
