#!/usr/bin/env python
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
import html
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wssdl_d2.evaluation import results_io  # noqa: E402
from wssdl_d2.evaluation.examples import select_examples, write_examples_page  # noqa: E402
from wssdl_d2.evaluation.plots import plot_corloc_bars, plot_froc, plot_roc  # noqa: E402
from wssdl_d2.evaluation.tables import format_ci  # noqa: E402

SUMMARY = (("CorLoc", "CorLoc %"), ("CorLoc-benign", "benign"), ("CorLoc-malignant", "malignant"),
           ("CorLoc_top1", "top-1 CorLoc %"), ("FP_per_normal", "FP / normal image"),
           ("AUC_BvsM", "AUC B vs M"), ("AUC_NvsMass", "AUC mass vs N"), ("Accuracy", "accuracy N/B/M %"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (or their inference/ folders)")
    parser.add_argument("--out", required=True, help="folder for index.html and the PNGs")
    parser.add_argument("--names", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--examples", type=int, default=12, help="example images per run (0: none)")
    return parser.parse_args(argv)


def load_run(path):
    """A run's results folder, report, per-image rows (dicts) and detections, aligned by file name."""
    folder = results_io.resolve_results_dir(path)
    report = results_io.read_report(folder)
    columns = results_io.read_per_image(folder)
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(columns["file_name"]))]
    detections = {d["file_name"]: d for d in results_io.read_detections(folder)}
    missing = [r["file_name"] for r in rows if r["file_name"] not in detections]
    if missing:
        raise results_io.ResultsError(f"{folder}: {len(missing)} images of {results_io.PER_IMAGE_FILE} are not in "
                                      f"{results_io.DETECTIONS_FILE}, e.g. {missing[0]}")
    return {"folder": folder, "report": report, "rows": rows,
            "detections": [detections[r["file_name"]] for r in rows]}


def _run_name(folder):
    folder = os.path.abspath(folder)
    return os.path.basename(os.path.dirname(folder) if os.path.basename(folder) == "inference" else folder)


def metrics_html(runs):
    level = round(100 * next(iter(runs.values()))["report"]["settings"]["ci_level"])
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in SUMMARY)
    lines = [f"<table><tr><th>run</th><th>images</th>{head}</tr>"]
    for name, run in runs.items():
        m, counts = run["report"]["metrics"], run["report"]["counts"]
        cells = []
        for metric, _ in SUMMARY:
            v = m.get(metric) or {}
            digits = 3 if metric.startswith(("AUC", "FP")) else 2
            cells.append(f"<td>{html.escape(format_ci(v.get('value'), v.get('lo'), v.get('hi'), digits))}</td>")
        lines.append(f"<tr><td>{html.escape(name)}</td><td>{counts['images']}</td>{''.join(cells)}</tr>")
    lines.append(f"</table><p>Brackets: {level}% bootstrap confidence intervals over test images.</p>")
    return "\n".join(lines)


def write_report(runs, out, examples=12):
    """Write the PNGs and index.html for ``runs`` (name -> :func:`load_run` result). Returns index.html's path."""
    os.makedirs(out, exist_ok=True)
    images = [plot_corloc_bars({n: r["report"]["metrics"] for n, r in runs.items()}, os.path.join(out, "corloc.png")),
              plot_froc({n: (r["report"]["froc"]["fppi"], r["report"]["froc"]["sensitivity"]) for n, r in runs.items()},
                        os.path.join(out, "froc.png")),
              plot_roc({n: (r["report"]["diagnosis"]["roc_benign_vs_malignant"]["fpr"],
                            r["report"]["diagnosis"]["roc_benign_vs_malignant"]["tpr"],
                            r["report"]["metrics"].get("AUC_BvsM", {}).get("value")) for n, r in runs.items()},
                       os.path.join(out, "roc.png"))]
    if examples > 0:
        first = next(iter(runs.values()))
        chosen = [first["rows"][i]["file_name"] for i in select_examples(first["rows"], examples)]
        for k, (name, run) in enumerate(runs.items()):
            position = {r["file_name"]: i for i, r in enumerate(run["rows"])}
            indices = [position[f] for f in chosen if f in position] or None
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            path, _ = write_examples_page(os.path.join(out, f"examples_{k}_{safe}.png"), run["detections"],
                                          run["rows"], run["report"]["settings"]["tau"], examples, indices)
            images.append(path)
    settings = next(iter(runs.values()))["report"]["settings"]
    body = [f"<h1>Evaluation report</h1><p>CorLoc: IoU &gt; {settings['iou_thresh']:g}; any-box definition "
            f"counts detections with score &ge; {settings['tau']:g}, top-1 the highest-scoring box of the image's "
            "class.</p>", metrics_html(runs), "<ul>"]
    body += [f"<li>{html.escape(name)}: <code>{html.escape(run['folder'])}</code></li>" for name, run in runs.items()]
    body.append("</ul>")
    body += [f'<h2>{html.escape(os.path.basename(p))}</h2><a href="{html.escape(os.path.basename(p))}">'
             f'<img src="{html.escape(os.path.basename(p))}" style="max-width:100%"></a>' for p in images]
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
    index = os.path.join(out, "index.html")
    with open(index, "w") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>wssdl_d2 evaluation</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return index


def main(argv=None):
    args = parse_args(argv)
    names = args.names or [_run_name(results_io.resolve_results_dir(r)) for r in args.runs]
    if len(names) != len(args.runs):
        raise results_io.ResultsError(f"{len(args.runs)} runs but {len(names)} --names")
    if len(set(names)) != len(names):
        names = [f"{k}: {n}" for k, n in enumerate(names)]
    runs = {name: load_run(path) for name, path in zip(names, args.runs)}
    index = write_report(runs, args.out, args.examples)
    print("wrote", index)
    return index


if __name__ == "__main__":
    try:
        main()
    except (results_io.ResultsError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
