"""Metric curves with confidence bands: CorLoc vs training iteration, CorLoc vs number of boxed images, ...

A *series* is a list of points ``(x, value, lo, hi)`` (``lo`` / ``hi`` the confidence interval, NaN when unknown),
sorted by ``x``; several named series go into one PNG (matplotlib's Agg canvas, as in :mod:`.plots`).
"""
import math

import numpy as np
from matplotlib.figure import Figure

from .plots import _save


def point_from_results(x, results, metric="CorLoc"):
    """One curve point from Detectron2-style flat results (``{"corloc/CorLoc": v, "corloc/CorLoc_lo": lo, ...}``
    or ``{"corloc": {"CorLoc": v, ...}}``); ``metric`` may also be a bbox metric such as ``"bbox/AP50"`` (no CI).
    Returns ``(x, value, lo, hi)``; raises KeyError naming the metric when it is absent."""
    flat = flatten_results(results)
    key = metric if "/" in metric else f"corloc/{metric}"
    if key not in flat:
        raise KeyError(f"metric {key!r} not in the results (have: {', '.join(sorted(flat)[:12])} ...)")
    nan = float("nan")
    return (x, float(flat[key]), float(flat.get(f"{key}_lo", nan)), float(flat.get(f"{key}_hi", nan)))


def flatten_results(results):
    """``{"bbox": {"AP50": v}, "corloc": {...}}`` -> ``{"bbox/AP50": v, ...}``; flat dicts pass through."""
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def plot_series(series, path, xlabel, ylabel="CorLoc %", title=None, log_x=False):
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


def format_point(point, digits=1):
    """``(x, v, lo, hi)`` -> ``"v [lo, hi]"`` (just ``"v"`` without a CI)."""
    _, value, lo, hi = point
    if math.isnan(lo) or math.isnan(hi):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
