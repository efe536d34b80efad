"""An HTML page (with PNGs) summarising one or several evaluated runs (``tools/report.py``): a metrics table
with confidence intervals, the CorLoc / FROC / ROC figures of all runs, and example pages of the same test
images for every run."""
import html
import os
from typing import Any, Dict

from .examples import select_examples, write_examples_page
from .plots import plot_reports
from .tables import format_ci

#: Columns of the metrics table: (metric, label).
SUMMARY = (("CorLoc", "CorLoc %"), ("CorLoc-benign", "benign"), ("CorLoc-malignant", "malignant"),
           ("CorLoc_top1", "top-1 CorLoc %"), ("FP_per_normal", "FP / normal image"),
           ("AUC_BvsM", "AUC B vs M"), ("AUC_NvsMass", "AUC mass vs N"), ("Accuracy", "accuracy N/B/M %"))
_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #999;padding:4px 8px}")


def metrics_html(runs: Dict[str, Dict[str, Any]]) -> str:
    """The ``<table>`` of ``runs`` (name -> :func:`.runs.load_run` result): one row per run, the ``SUMMARY``
    metrics with their confidence intervals."""
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


def _example_pages(runs: Dict[str, Dict[str, Any]], out: str, examples: int) -> list:
    first = next(iter(runs.values()))
    chosen = [first["rows"][i]["file_name"] for i in select_examples(first["rows"], examples)]
    paths = []
    for k, (name, run) in enumerate(runs.items()):
        position = {r["file_name"]: i for i, r in enumerate(run["rows"])}
        indices = [position[f] for f in chosen if f in position] or None
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        path, _ = write_examples_page(os.path.join(out, f"examples_{k}_{safe}.png"), run["detections"],
                                      run["rows"], run["report"]["settings"]["tau"], examples, indices)
        paths.append(path)
    return paths


def write_report(runs: Dict[str, Dict[str, Any]], out: str, examples: int = 12) -> str:
    """Write ``index.html``, ``corloc.png``, ``froc.png``, ``roc.png`` and, when ``examples`` > 0, one
    ``examples_<k>_<name>.png`` per run (the same ``examples`` test images for every run) into ``out``.
    ``runs``: name -> :func:`.runs.load_run` result. Returns index.html's path."""
    os.makedirs(out, exist_ok=True)
    images = plot_reports({n: r["report"] for n, r in runs.items()}, out)
    if examples > 0:
        images += _example_pages(runs, out, examples)
    settings = next(iter(runs.values()))["report"]["settings"]
    body = [f"<h1>Evaluation report</h1><p>CorLoc: IoU &gt; {settings['iou_thresh']:g}; any-box definition "
            f"counts detections with score &ge; {settings['tau']:g}, top-1 the highest-scoring box of the image's "
            "class.</p>", metrics_html(runs), "<ul>"]
    body += [f"<li>{html.escape(name)}: <code>{html.escape(run['folder'])}</code></li>" for name, run in runs.items()]
    body.append("</ul>")
    body += [f'<h2>{html.escape(os.path.basename(p))}</h2><a href="{html.escape(os.path.basename(p))}">'
             f'<img src="{html.escape(os.path.basename(p))}" style="max-width:100%"></a>' for p in images]
    index = os.path.join(out, "index.html")
    with open(index, "w") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>wssdl_d2 evaluation</title>"
                f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return index
