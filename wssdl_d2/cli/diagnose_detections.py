"""Where do a detector's boxes land, and why does it miss? Compare configs on the same images.

    python tools/diagnose_detections.py --out output/why/busi \\
        --runs strong_only_20=output/crossval/busi/strong_only_20/fold0,...  wssdl_20=...
    python tools/diagnose_detections.py --out output/why/busi --crossval output/crossval/busi \\
        --configs strong_only_20 wssdl_20 fully_supervised            # every fold*/ of each config, pooled
    python tools/diagnose_detections.py --out output/why/breast --crossval output/crossval/busi \\
        --configs strong_only_20 wssdl_20 --subfolder breast          # each fold model on one external set

Reads each run's ``corloc_detections.json`` (written by ``tools/train_net.py --eval-only``) and the images it
names, finds burnt-in overlays (calipers, text: wssdl_d2.data.overlays) and the field of view in each image once,
and computes per image where the top box and the detections >= tau lie (image border, field-of-view edge, overlay
pixels, size against the mass) and why a mass was missed (wrong class, low score, elsewhere):
wssdl_d2.evaluation.detection_diagnostics. Prints a Markdown table per config and each config against the
reference (the first, or --reference): paired CorLoc differences in subgroups (calipers or not, class, size),
what the images found by one config only have in common, and paired behaviours (McNemar).

Writes into --out: ``<run>.csv`` (one row per image and fold), ``report.json`` and ``report.md``. Folders whose
images do not overlap are pooled (out-of-fold predictions); folders holding the same images are treated as
separate models (mean and range).
"""
import argparse
import glob
import os
from typing import Optional, Sequence

from ..data.errors import DatasetError
from ..evaluation.diagnostics_report import build_report, diagnose_runs, markdown, parse_run, write_rows
from ..evaluation.results_io import ResultsError, json_safe
from ..utils.atomic import atomic_open, atomic_write_json
from . import console_command


#: The user's mistakes: one ``error: ...`` line naming the file, exit status 2.
ERRORS = (ResultsError, DatasetError, ValueError)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=[], metavar="NAME=FOLDER[,FOLDER...]",
                        help="a config's results folders (run folders or their inference/)")
    parser.add_argument("--crossval", help="a tools/crossval.py output folder: with --configs, every "
                                           "<config>/fold*/[<subfolder>] is a folder of that run")
    parser.add_argument("--configs", nargs="+", default=[], help="config names under --crossval")
    parser.add_argument("--subfolder", default="", help="evaluation folder inside each fold, e.g. breast")
    parser.add_argument("--out", required=True, help="folder for the CSV / JSON / Markdown files")
    parser.add_argument("--reference", help="run every other run is compared with (default: the first)")
    parser.add_argument("--tau", type=float, help="score threshold (default: the runs' corloc.json)")
    parser.add_argument("--border-px", type=float, default=8.0, help="'at the border' within this many pixels")
    parser.add_argument("--min-overlay-px", type=int, default=10, help="overlay pixels a box must cover")
    parser.add_argument("--near-px", type=float, default=15.0, help="calipers: overlay within this many pixels "
                                                                    "of a ground-truth box")
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def collect_runs(args):
    runs = dict(parse_run(spec) for spec in args.runs)
    for config in args.configs:
        if not args.crossval:
            raise ResultsError("--configs needs --crossval")
        pattern = os.path.join(args.crossval, config, "fold*", args.subfolder)
        folders = sorted(p for p in glob.glob(pattern) if os.path.isdir(p))
        if not folders:
            raise ResultsError(f"no folders match {pattern}")
        runs[config] = parse_run(f"{config}=" + ",".join(folders))[1]
    if not runs:
        raise ResultsError("give --runs or --crossval with --configs")
    return runs


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    runs = collect_runs(args)
    columns, settings = diagnose_runs(runs, args.tau, None, args.border_px, args.min_overlay_px, args.near_px)
    report = build_report(columns, args.reference, args.samples, args.seed)
    report["settings"] = settings
    report["folders"] = {name: [f for _, f in folders] for name, folders in runs.items()}
    os.makedirs(args.out, exist_ok=True)
    for name, cols in columns.items():
        write_rows(cols, os.path.join(args.out, f"{name}.csv"))
    atomic_write_json(os.path.join(args.out, "report.json"), json_safe(report), indent=1)
    text = markdown(report)
    with atomic_open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(f"tau {settings['tau']:g}, IoU > {settings['iou_thresh']:g}, border {args.border_px:g} px, "
          f"overlay >= {args.min_overlay_px} px, calipers within {args.near_px:g} px of the mass box")
    print(text)
    print("wrote", args.out)
    return report


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
