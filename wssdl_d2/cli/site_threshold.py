"""Fit a site's detection score threshold from its image labels alone, cross-fitted over the site's folds, and
measure what it changes against tau = 0.5.

    python tools/site_threshold.py output/crossval/busi/wssdl_20/fold0/breast \\
        --site-folds datasets/breast/meta/folds.csv --out output/site_threshold/breast
    python tools/site_threshold.py output/crossval/busi/*/fold*/inference \\
        --site-folds datasets/busi/meta/folds.csv --inner-folds 5 --out output/site_threshold/busi

Each RUN is an evaluated run folder (or its ``inference/`` folder) with ``corloc_detections.json``. Its images are
matched to ``--site-folds`` (a prepared dataset's ``meta/folds.csv``); each fold's images are thresholded at the
threshold fitted on the other folds' image labels and scores (no box of the site is used), and the per-image
outcomes are compared, paired, with those at ``--tau``. A run of a cross-validation model's held-out fold covers a
single fold of the table: ``--inner-folds K`` splits its images into K folds by near-duplicate group instead. A RUN
may also be a cross-validation row, a folder of ``fold<k>/`` runs (``tools/adapt_site.py --site-folds``'s
``adapted_n<N>``): their held-out detections are pooled, each image scored by the model that did not train on it,
and each fold's threshold is fitted on the other folds' images.

Writes ``OUT/<run name>/site_threshold.json`` (the threshold to deploy, fitted on all of the run's images, its use
as ``WSSDL.EVAL.SCORE_THRESH``, the cross-fitted fits, CorLoc / FP per image at both thresholds, the paired
comparison, the scores of the top-1 hits, FROC sensitivity at 1 FP / image) and ``OUT/<run name>/
corloc_per_image.csv`` (the outcomes at the cross-fitted thresholds), and ``OUT/summary.md``; prints the
Markdown table. Rules (``--rule``): ``rate`` matches the fraction of images with a detection >= t to the fraction
labelled benign or malignant; ``prior_shift`` shifts the score's logit so that its mean probability matches that
fraction. See wssdl_d2/evaluation/site_threshold.py.
"""
import argparse
import os
from typing import Optional, Sequence

from ..data.folds import read_folds_csv
from ..evaluation.results_io import ResultsError
from ..evaluation.site_threshold import (RULES, evaluate_site_threshold, read_run_detections, run_names,
                                         site_folds, summary_table, write_site_threshold)
from ..utils.atomic import atomic_open
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="evaluated run folders (corloc_detections.json)")
    parser.add_argument("--site-folds", required=True, metavar="CSV",
                        help="the site's folds table (<prepared dataset>/meta/folds.csv)")
    parser.add_argument("--out", required=True, help="output folder (one subfolder per run, summary.md)")
    parser.add_argument("--rule", choices=RULES, default="rate", help="how the threshold is fitted (default rate)")
    parser.add_argument("--inner-folds", type=int, default=0, metavar="K",
                        help="split each run's images into K folds by group (a run of a single held-out fold)")
    parser.add_argument("--tau", type=float, default=0.5, help="the reference threshold (default 0.5)")
    parser.add_argument("--iou", type=float, default=0.5, help="a hit needs IoU above this (default 0.5)")
    parser.add_argument("--names", nargs="+", help="run names (default: the folders without their common prefix)")
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap and inner-split seed")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results in --out")
    args = parser.parse_args(argv)
    if args.names and len(args.names) != len(args.runs):
        parser.error(f"--names gives {len(args.names)} names for {len(args.runs)} runs")
    if args.inner_folds == 1 or args.inner_folds < 0:
        parser.error("--inner-folds must be 0 (the table's folds) or at least 2")
    return args


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    table = read_folds_csv(args.site_folds)
    runs = [read_run_detections(run) for run in args.runs]
    folders = [folder for folder, _ in runs]
    names = args.names or run_names(folders)
    if len(set(names)) != len(names):
        raise ValueError(f"two runs have the same name ({names}); pass --names")
    summary = os.path.join(args.out, "summary.md")
    if os.path.exists(summary) and not args.overwrite:
        raise FileExistsError(f"{summary} exists; pass --overwrite to replace it")
    results = {}
    for name, (folder, images) in zip(names, runs):
        folds = site_folds([i["file_name"] for i in images], [i["image_label"] for i in images], table,
                           args.inner_folds, args.seed, source=args.site_folds)
        try:
            result = evaluate_site_threshold(images, folds, args.rule, args.tau, args.iou, args.samples, args.seed)
        except ValueError as error:
            raise ValueError(f"{folder}: {error}") from None
        write_site_threshold(result, os.path.join(args.out, name), overwrite=args.overwrite,
                             sources={"run": folder, "site_folds": args.site_folds,
                                      "inner_folds": str(args.inner_folds)})
        results[name] = result
        deploy = result["deploy"]
        print(f"{name}: deploy WSSDL.EVAL.SCORE_THRESH {deploy['tau']:.4f} ({args.rule}, {deploy['images']} images, "
              f"abnormal rate {deploy['rate']:.3f}{'' if deploy['reachable'] else ', rate not reachable'})")
    text = summary_table(results)
    with atomic_open(summary, "w") as f:
        f.write(f"Site threshold, rule {args.rule}, reference tau {args.tau:g}, site folds {args.site_folds}"
                f"{f' (inner {args.inner_folds}-fold split)' if args.inner_folds else ''}\n\n{text}\n")
    print(text)
    print(f"wrote {summary} and {len(results)} run folders under {args.out}")
    return results


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, FileExistsError, ValueError, ResultsError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
