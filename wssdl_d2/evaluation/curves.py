"""Metric curves with confidence bands: CorLoc vs training iteration, CorLoc vs number of boxed images, ...

A *series* is a list of points ``(x, value, lo, hi)`` (``lo`` / ``hi`` the confidence interval, NaN when unknown),
sorted by ``x``; several named series go into one PNG (matplotlib's Agg canvas, as in :mod:`.plots`).
"""
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
from detectron2.evaluation.testing import flatten_results_dict
from matplotlib.figure import Figure

from .plots import _save

Point = Tuple[float, float, float, float]  # (x, value, lo, hi)


def point_from_results(x: float, results: Mapping, metric: str = "CorLoc") -> Point:
    """One curve point from Detectron2-style results, flat (``{"corloc/CorLoc": v, "corloc/CorLoc_lo": lo, ...}``)
    or nested (``{"corloc": {"CorLoc": v, ...}}``); ``metric`` may also be a bbox metric such as ``"bbox/AP50"``
    (no CI). Returns ``(x, value, lo, hi)`` in the metric's unit (percent for CorLoc / AP); raises KeyError
    naming the metric when it is absent."""
    flat = flatten_results_dict(results)
    key = metric if "/" in metric else f"corloc/{metric}"
    if key not in flat:
        raise KeyError(f"metric {key!r} not in the results (have: {', '.join(sorted(flat)[:12])} ...)")
    nan = float("nan")
    return (x, float(flat[key]), float(flat.get(f"{key}_lo", nan)), float(flat.get(f"{key}_hi", nan)))


def plot_series(series: Dict[str, List[Point]], path: str, xlabel: str, ylabel: str = "CorLoc %",
                title: Optional[str] = None, log_x: bool = False) -> str:
    """Lines with shaded confidence bands (an error bar for a series of one point): ``series`` name -> list of
    ``(x, value, lo, hi)``. Returns ``path``."""
    fig = Figure(figsize=(6.0, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for name, points in series.items():
        points = sorted(points)
        x, value, lo, hi = (np.asarray(column, dtype=float) for column in zip(*points))
        line, = ax.plot(x, value, marker="o", label=name)
        known = np.isfinite(lo) & np.isfinite(hi)
        if known.sum() > 1:
            ax.fill_between(x[known], lo[known], hi[known], color=line.get_color(), alpha=0.18, linewidth=0)
        elif known.any():  # a band needs two points: one point gets an error bar
            ax.errorbar(x[known], value[known], yerr=[value[known] - lo[known], hi[known] - value[known]],
                        color=line.get_color(), capsize=4, linestyle="none")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)
