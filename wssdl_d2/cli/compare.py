"""Paired comparison of two evaluated runs on the same test images.

    python tools/compare.py output/phantom/joint output/phantom/strong_only
    python tools/compare.py RUN_A/inference RUN_B/inference --names joint strong --plots output/compare

Each RUN is a run folder, its ``inference/`` folder or a file in it, holding the ``corloc_per_image.csv`` (and
``corloc.json``) written by ``tools/train_net.py --eval-only`` with ``WSSDL.EVAL.CORLOC``. Prints, per metric,
A, B, A - B with a paired-bootstrap confidence interval and two-sided p-value (the same resampled images for
both runs), and McNemar's exact p for the per-image right / wrong metrics (CorLoc, accuracy). Exits with an
error naming the images when the two runs were not evaluated on the same images, or with different tau / IoU.
"""
import argparse
from typing import Optional, Sequence

from ..evaluation.comparison import compare_folders
from ..evaluation.paired import explain_difference
from ..evaluation.plots import plot_reports
from ..evaluation.results_io import ResultsError, json_safe
from ..evaluation.tables import comparison_table
from ..utils.atomic import atomic_write_json
from . import console_command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="run folder, its inference/ folder, or a results file in it")
    parser.add_argument("run_b")
    parser.add_argument("--names", nargs=2, metavar=("A", "B"), help="names to print (default: the folders)")
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--json", help="also write the comparison to this JSON file")
    parser.add_argument("--plots", help="write CorLoc bars / FROC / ROC PNGs of both runs into this folder")
    parser.add_argument("--explain", nargs="*", default=["CorLoc"], metavar="METRIC",
                        help="after the table, one plain sentence per metric on what its difference means "
                             "(default: CorLoc)")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    c = compare_folders(args.run_a, args.run_b, args.names, args.samples, args.seed, args.level)
    a, b = c["a"]["name"], c["b"]["name"]
    print(f"A = {a} ({c['a']['folder']})\nB = {b} ({c['b']['folder']})\n"
          f"{c['images']} paired images, {args.samples} paired bootstrap resamples (seed {args.seed})")
    print(comparison_table(c, args.level))
    for metric in args.explain:
        print(explain_difference(c["metrics"], metric, a, b, args.level))
    if args.json:
        atomic_write_json(args.json, json_safe({"a": c["a"], "b": c["b"], "bootstrap_samples": args.samples,
                                                "seed": args.seed, "level": args.level, "metrics": c["metrics"]}),
                          indent=1)
    reports = {name: r for name, r in zip((a, b), c["reports"]) if r}
    if args.plots and reports:
        for path in plot_reports(reports, args.plots, ("compare_corloc.png", "compare_froc.png", "compare_roc.png")):
            print("wrote", path)
    return c["metrics"]


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (ResultsError, ValueError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)
