#!/usr/bin/env python
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
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tabulate import tabulate  # noqa: E402

from wssdl_d2.evaluation import results_io  # noqa: E402
from wssdl_d2.evaluation.curves import plot_series  # noqa: E402
from wssdl_d2.evaluation.paired import compare_runs  # noqa: E402
from wssdl_d2.evaluation.tables import format_ci  # noqa: E402
from wssdl_d2.utils.atomic import atomic_write_json  # noqa: E402


def parse_run(text):
    """``NAME=RUN`` or ``NAME=RUN:BOXES`` -> (name, folder, boxes or None)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=RUN_FOLDER")
    name, folder = text.split("=", 1)
    boxes = None
    head, sep, tail = folder.rpartition(":")
    if sep and tail.isdigit():
        folder, boxes = head, int(tail)
    return name, folder, boxes


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


def last_ap50(run_folder):
    """The last ``bbox/AP50`` logged in ``RUN/metrics.json`` (Detectron2's JSONWriter), else the one in
    ``RUN/results.json``; None when neither has one."""
    value = None
    path = os.path.join(run_folder, "metrics.json")
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if '"bbox/AP50"' in line:
                    value = json.loads(line)["bbox/AP50"]
    path = os.path.join(run_folder, "results.json")
    if value is None and os.path.isfile(path):
        with open(path) as f:
            value = json.load(f).get("results", {}).get("bbox/AP50")
    return value


def boxed_images(run_folder):
    """Images with human boxes in the run's DATASETS.TRAIN (``supervision == "strong"``), from its config.yaml."""
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog

    import wssdl_d2
    from wssdl_d2.data import default_dataset_root, register_datasets_under

    path = os.path.join(run_folder, "config.yaml")
    if not os.path.isfile(path):
        raise results_io.ResultsError(f"{run_folder}: no config.yaml to count its boxed images: give NAME=RUN:BOXES")
    cfg = get_cfg()
    wssdl_d2.add_wssdl_config(cfg)
    cfg.merge_from_file(path)
    register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
    try:
        return sum(d.get("supervision", "strong") == "strong"
                   for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name))
    except KeyError as err:
        raise results_io.ResultsError(f"{path}: {err}; give NAME=RUN:BOXES") from None


def _metric(report, name):
    m = report["metrics"].get(name)
    return (m["value"], m["lo"], m["hi"]) if m else (math.nan, math.nan, math.nan)


def build_rows(runs, reference, samples, seed):
    """One dict per run with its metrics and its paired comparison against ``reference``."""
    loaded = {}
    for name, folder, boxes in runs:
        results = results_io.resolve_results_dir(folder)
        run_folder = os.path.dirname(results) if os.path.basename(results) == "inference" else results
        loaded[name] = (run_folder, results_io.read_report(results), results_io.read_per_image(results), boxes)
    _, ref_report, ref_columns, _ = loaded[reference]
    rows = []
    for name, (run_folder, report, columns, boxes) in loaded.items():
        row = {"name": name, "folder": run_folder, "boxes": boxes, "AP50": last_ap50(run_folder)}
        for metric in ("CorLoc", "CorLoc_top1", "AUC_BvsM", "FP_per_normal", "Accuracy"):
            row[metric] = _metric(report, metric)
        if name != reference:
            paired = compare_runs(columns, ref_columns, samples, seed, name_a=name, name_b=reference)["CorLoc"]
            row["vs_reference"] = {"diff": paired["diff"], "ci": paired["ci"], "p_bootstrap": paired["p_value"],
                                   "p_mcnemar": (paired["mcnemar"] or {}).get("p_value")}
        rows.append(row)
    return rows


def markdown(rows, reference):
    table = []
    for row in rows:
        paired = row.get("vs_reference")
        if paired:
            versus = f"{format_ci(paired['diff'], *paired['ci'], 1)}; p {paired['p_bootstrap']:.3g}"
            if paired["p_mcnemar"] is not None:
                versus += f" / {paired['p_mcnemar']:.2g}"
        else:
            versus = "(reference)"
        ap50 = "-" if row["AP50"] is None else f"{row['AP50']:.1f}"
        table.append([row["name"], format_ci(*row["CorLoc"], 1), format_ci(*row["CorLoc_top1"], 1), ap50,
                      format_ci(*row["AUC_BvsM"], 3), format_ci(*row["FP_per_normal"], 3), versus])
    headers = ["run", "CorLoc % [95% CI]", "top-1 CorLoc %", "AP50", "AUC B vs M", "FP / normal image",
               f"CorLoc vs {reference} [95% CI]; bootstrap / McNemar p"]
    return tabulate(table, headers=headers, tablefmt="pipe", stralign="left", disable_numparse=True)


def main(argv=None):
    args = parse_args(argv)
    rows = build_rows(args.runs, args.reference, args.samples, args.seed)
    print(markdown(rows, args.reference))
    if args.plot_boxes:
        by_name = {row["name"]: row for row in rows}
        series = {}
        for label, *names in args.series:
            points = []
            for name in names:
                row = by_name[name]
                boxes = row["boxes"] if row["boxes"] is not None else boxed_images(row["folder"])
                points.append((boxes,) + tuple(row["CorLoc"]))
            series[label] = points
        plot_series(series, args.plot_boxes, xlabel="training images with boxes drawn by a person",
                    title="CorLoc vs boxed images (95% CI)")
        print("wrote", args.plot_boxes)
    if args.json:
        atomic_write_json(args.json, results_io.json_safe(rows), indent=1)
    return rows


if __name__ == "__main__":
    try:
        main()
    except results_io.ResultsError as err:
        sys.exit(f"error: {err}")
