#!/usr/bin/env python
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
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tabulate import tabulate  # noqa: E402

from wssdl_d2.evaluation import results_io  # noqa: E402
from wssdl_d2.evaluation.paired import compare_runs, explain_difference  # noqa: E402
from wssdl_d2.evaluation.tables import format_ci  # noqa: E402
from wssdl_d2.utils.atomic import atomic_write_json  # noqa: E402


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


def _run_name(path):
    path = os.path.abspath(path)
    if os.path.basename(path) == "inference":
        path = os.path.dirname(path)
    return os.path.basename(path)


def _settings_check(folder_a, folder_b, name_a, name_b):
    """The two reports (None where a run has no corloc.json); an error when tau / IoU differ."""
    reports = []
    for folder in (folder_a, folder_b):
        has_report = os.path.isfile(os.path.join(folder, results_io.REPORT_FILE))
        reports.append(results_io.read_report(folder) if has_report else None)
    if all(reports):
        for key in ("tau", "iou_thresh"):
            a, b = reports[0]["settings"].get(key), reports[1]["settings"].get(key)
            if a != b:
                raise results_io.ResultsError(
                    f"{name_a} was evaluated with {key} {a} but {name_b} with {key} {b}: re-evaluate one of them "
                    f"(WSSDL.EVAL.SCORE_THRESH / IOU_THRESH) before comparing")
    return reports


def comparison_table(result, name_a, name_b, level):
    rows = []
    for metric, r in result.items():
        digits = 3 if metric.startswith(("AUC", "FP")) else 2
        mcnemar = r["mcnemar"]
        mc = "-" if mcnemar is None else f"{mcnemar['p_value']:.3g} ({mcnemar['a_only']}/{mcnemar['b_only']})"
        rows.append([metric, str(r["n"]), format_ci(r["a"], None, None, digits), format_ci(r["b"], None, None, digits),
                     format_ci(r["diff"], *r["ci"], digits), f"{r['p_value']:.3g}", mc])
    headers = ["metric", "images", name_a, name_b, f"A - B [{round(100 * level)}% CI]", "bootstrap p",
               "McNemar p (A only / B only)"]
    return tabulate(rows, headers=headers, tablefmt="pipe", stralign="left", disable_numparse=True)


def write_plots(folder, reports, names):
    from wssdl_d2.evaluation.plots import plot_corloc_bars, plot_froc, plot_roc

    runs = {n: r for n, r in zip(names, reports) if r}
    if not runs:
        return []
    paths = [plot_corloc_bars({n: r["metrics"] for n, r in runs.items()}, os.path.join(folder, "compare_corloc.png")),
             plot_froc({n: (r["froc"]["fppi"], r["froc"]["sensitivity"]) for n, r in runs.items()},
                       os.path.join(folder, "compare_froc.png"))]
    roc = {n: (r["diagnosis"]["roc_benign_vs_malignant"]["fpr"], r["diagnosis"]["roc_benign_vs_malignant"]["tpr"],
               r["metrics"].get("AUC_BvsM", {}).get("value")) for n, r in runs.items()}
    paths.append(plot_roc(roc, os.path.join(folder, "compare_roc.png")))
    return paths


def main(argv=None):
    args = parse_args(argv)
    folder_a, folder_b = results_io.resolve_results_dir(args.run_a), results_io.resolve_results_dir(args.run_b)
    name_a, name_b = args.names or (_run_name(folder_a), _run_name(folder_b))
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    reports = _settings_check(folder_a, folder_b, name_a, name_b)
    columns_a, columns_b = results_io.read_per_image(folder_a), results_io.read_per_image(folder_b)
    result = compare_runs(columns_a, columns_b, args.samples, args.seed, args.level, name_a, name_b)
    print(f"A = {name_a} ({folder_a})\nB = {name_b} ({folder_b})\n"
          f"{len(columns_a['file_name'])} paired images, {args.samples} paired bootstrap resamples (seed {args.seed})")
    print(comparison_table(result, name_a, name_b, args.level))
    for metric in args.explain:
        print(explain_difference(result, metric, name_a, name_b, args.level))
    if args.json:
        atomic_write_json(args.json, results_io.json_safe(
            {"a": {"name": name_a, "folder": folder_a}, "b": {"name": name_b, "folder": folder_b},
             "bootstrap_samples": args.samples, "seed": args.seed, "level": args.level, "metrics": result}),
            indent=1)
    if args.plots:
        for path in write_plots(args.plots, reports, (name_a, name_b)):
            print("wrote", path)
    return result


if __name__ == "__main__":
    try:
        main()
    except results_io.ResultsError as err:
        sys.exit(f"error: {err}")
