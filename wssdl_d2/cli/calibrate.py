"""Calibrate a model's malignancy score into a probability of malignancy, from a cross-validation's out-of-fold
predictions.

    python tools/calibrate.py --crossval output/crossval/busi --config wssdl_20 --out output/calibration/wssdl_20

reads ``<crossval>/<config>/fold<k>/inference/corloc_per_image.csv`` of every evaluated fold, fits Platt scaling
and isotonic regression of ``malignancy_score`` (each judged cross-fitted: every fold calibrated by a fit on the
others) and keeps the one with the lowest log-loss (or ``--method``). Writes ``<out>/calibration.json`` (what
``tools/publish_model.py --ship --calibration`` ships with the model and the demo reads: method and parameters,
plus the log-loss, Brier score and expected calibration error before and after) and ``<out>/reliability.png``.
``--population all`` (default) calibrates P(malignant | image) over every image, normal ones included;
``mass`` over images with a lesion only. See wssdl_d2/evaluation/calibration.py.
"""
import argparse
import json
from typing import Optional, Sequence

from ..evaluation.calibration import ECE_BINS, POPULATIONS, calibrate, pooled_crossval, write_calibration
from ..evaluation.results_io import ResultsError
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crossval", required=True, help="the cross-validation folder (tools/crossval.py --out)")
    parser.add_argument("--config", required=True, help="the run name inside it (e.g. wssdl_20)")
    parser.add_argument("--out", required=True, help="folder for calibration.json and reliability.png")
    parser.add_argument("--population", choices=POPULATIONS, default="all",
                        help="all images (P(malignant | image)) or images with a lesion only")
    parser.add_argument("--method", choices=("auto", "platt", "isotonic"), default="auto",
                        help="auto: the lowest cross-fitted log-loss")
    parser.add_argument("--bins", type=int, default=ECE_BINS, help="equal-width ECE bins (default 10)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing calibration in --out")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    report = calibrate(pooled_crossval(args.crossval, args.config), args.population, args.method, args.bins)
    paths = write_calibration(report, args.out, overwrite=args.overwrite)
    rows = [("uncalibrated score", report["uncalibrated"])]
    rows += [(f"{name} (cross-fitted)", m["cross_fitted"]) for name, m in report["methods"].items()]
    print(f"{report['data']['images']} images ({report['data']['malignant']} malignant) from "
          f"{report['data']['folds']} folds; {report['target']}")
    for name, scores in rows:
        print(f"  {name:28s} log-loss {scores['log_loss']:.4f}  Brier {scores['brier']:.4f}  "
              f"ECE ({args.bins} bins) {scores['ece']:.4f}")
    print(f"chosen: {report['method']} ({report['chosen_by']}): {json.dumps(report['parameters'])[:200]}")
    print(f"wrote {paths['json']} and {paths['png']}")
    return report


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, FileExistsError, ValueError, ResultsError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
