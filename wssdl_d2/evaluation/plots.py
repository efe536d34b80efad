"""PNG plots of evaluation results: FROC curves, CorLoc with CI bars, ROC curves, example detections.

Matplotlib through its Agg canvas (``Figure`` + ``FigureCanvasAgg``): no display needed and pyplot's global
state is not touched. Every function takes the data of one or several runs (name -> data) and writes one PNG.
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..data.labels import CLASS_COLORS_HEX

#: Bars of :func:`plot_corloc_bars` (metric name, label).
CORLOC_BARS = (("CorLoc", "any box\nall"), ("CorLoc-benign", "any box\nbenign"),
               ("CorLoc-malignant", "any box\nmalignant"), ("CorLoc_top1", "top-1\nall"),
               ("CorLoc_top1-benign", "top-1\nbenign"), ("CorLoc_top1-malignant", "top-1\nmalignant"))
GT_COLOR = "#17becf"  # cyan: the class colours (green benign, red malignant) are the detections'


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi)
    return path


def plot_froc(curves: Mapping[str, Tuple[np.ndarray, np.ndarray]], path: str, title: str = "FROC") -> str:
    """FROC curves: ``curves`` name -> (fppi (T,), sensitivity (T,)); log-scaled FP axis from 1/8 to 8."""
    fig = Figure(figsize=(5.5, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for name, (fppi, sens) in curves.items():
        fppi, sens = np.asarray(fppi, float), np.asarray(sens, float)
        keep = fppi > 0
        ax.step(np.r_[1e-3, fppi[keep]], np.r_[sens[~keep].max() if (~keep).any() else 0.0, sens[keep]],
                where="post", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1 / 8, 8)
    ax.set_xticks([2.0 ** k for k in range(-3, 4)], ["1/8", "1/4", "1/2", "1", "2", "4", "8"])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("sensitivity (masses found)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_corloc_bars(runs: Mapping[str, Mapping[str, Dict[str, Any]]], path: str,
                     bars: Sequence[Tuple[str, str]] = CORLOC_BARS,
                     title: str = "CorLoc with confidence intervals") -> str:
    """Grouped bars, one group per metric and one bar per run: ``runs`` name -> report ``metrics``
    (metric name -> {value, lo, hi}); undefined metrics are left out of the figure."""
    bars = [(m, label) for m, label in bars
            if any(m in metrics and np.isfinite(_num(metrics[m]["value"])) for metrics in runs.values())]
    fig = Figure(figsize=(max(5.0, 1.1 * len(bars) * max(1, len(runs)) ** 0.5 + 2), 4.2), dpi=110,
                 layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(bars))
    for k, (name, metrics) in enumerate(runs.items()):
        values = np.array([_num(metrics.get(m, {}).get("value")) for m, _ in bars])
        lo = np.array([_num(metrics.get(m, {}).get("lo")) for m, _ in bars])
        hi = np.array([_num(metrics.get(m, {}).get("hi")) for m, _ in bars])
        err = np.vstack([np.nan_to_num(values - lo), np.nan_to_num(hi - values)])
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, np.nan_to_num(values), width, yerr=err, capsize=3,
               label=name)
    ax.set_xticks(x, [label for _, label in bars], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("CorLoc %")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def _num(value):
    return float("nan") if value is None else float(value)


def plot_roc(curves: Mapping[str, Tuple[np.ndarray, np.ndarray, Optional[float]]], path: str,
             title: str = "ROC, malignant vs benign") -> str:
    """ROC curves: ``curves`` name -> (fpr, tpr, auc); the chance diagonal for reference."""
    fig = Figure(figsize=(4.6, 4.4), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    for name, (fpr, tpr, auc) in curves.items():
        label = name if auc is None or not np.isfinite(_num(auc)) else f"{name} (AUC {_num(auc):.3f})"
        ax.plot(np.asarray(fpr, float), np.asarray(tpr, float), label=label)  # tied scores: diagonal steps
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (benign called malignant)")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_examples(examples: Sequence[Dict[str, Any]], path: str, class_names: Sequence[str] = ("benign", "malignant"),
                  columns: int = 4) -> str:
    """A page of images with ground truth (cyan) and detections (class colour, label and score).

    Args:
        examples: list of dicts with ``image`` (H, W) or (H, W, 3) uint8, ``title``, ``gt_boxes`` (K, 4) XYXY,
            ``boxes`` (D, 4) XYXY, ``scores`` (D,), ``classes`` (D,).
    """
    if not examples:
        raise ValueError("no example images to plot")
    rows = int(np.ceil(len(examples) / columns))
    cols = min(columns, len(examples))
    fig = Figure(figsize=(3.2 * cols, 2.9 * rows), dpi=100, layout="constrained")
    for k, ex in enumerate(examples):
        ax = fig.add_subplot(rows, cols, k + 1)
        image = np.asarray(ex["image"])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        for x0, y0, x1, y1 in np.asarray(ex.get("gt_boxes", []), float).reshape(-1, 4):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=GT_COLOR, linewidth=2))
        for (x0, y0, x1, y1), score, cls in zip(np.asarray(ex.get("boxes", []), float).reshape(-1, 4),
                                                ex.get("scores", []), ex.get("classes", [])):
            color = CLASS_COLORS_HEX[int(cls) % len(CLASS_COLORS_HEX)]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.5,
                                   linestyle="--"))
            ax.text(x0, y0, f"{class_names[int(cls)]} {float(score):.2f}", color="white", fontsize=7,
                    va="bottom", bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "linewidth": 0})
        ax.set_title(ex.get("title", ""), fontsize=8)
        ax.set_axis_off()
    return _save(fig, path)


#: File names of :func:`plot_reports`: (CorLoc bars, FROC, ROC).
REPORT_PLOTS = ("corloc.png", "froc.png", "roc.png")


def _has_roc(report: Mapping) -> bool:
    roc = report["diagnosis"]["roc_benign_vs_malignant"]
    fpr, tpr = np.asarray(roc["fpr"], float), np.asarray(roc["tpr"], float)
    return len(fpr) > 1 and bool(np.all(np.isfinite(fpr)) and np.all(np.isfinite(tpr)))


def plot_reports(reports: Mapping[str, Mapping], folder: str, files: Sequence[str] = REPORT_PLOTS) -> List[str]:
    """The three figures of one or several evaluation reports (``corloc.json`` contents; name -> report), each
    with every run: CorLoc with CI bars, FROC, and the benign-vs-malignant ROC (left out when no run has one of
    two or more finite points, e.g. a test set without both classes). ``files``: the three PNG names in
    ``folder``. Returns the paths written."""
    paths = [plot_corloc_bars({n: r["metrics"] for n, r in reports.items()}, os.path.join(folder, files[0])),
             plot_froc({n: (r["froc"]["fppi"], r["froc"]["sensitivity"]) for n, r in reports.items()},
                       os.path.join(folder, files[1]))]
    roc = {n: (r["diagnosis"]["roc_benign_vs_malignant"]["fpr"], r["diagnosis"]["roc_benign_vs_malignant"]["tpr"],
               r["metrics"].get("AUC_BvsM", {}).get("value")) for n, r in reports.items() if _has_roc(r)}
    if roc:
        paths.append(plot_roc(roc, os.path.join(folder, files[2])))
    return paths


def write_run_plots(folder: str, report: Mapping, name: str = "run") -> List[str]:
    """The CorLoc-bar, FROC and ROC PNGs of one evaluation report into ``folder`` (``corloc_bars.png``,
    ``corloc_froc.png``, ``corloc_roc.png``). Returns their paths."""
    return plot_reports({name: report}, folder, ("corloc_bars.png", "corloc_froc.png", "corloc_roc.png"))
