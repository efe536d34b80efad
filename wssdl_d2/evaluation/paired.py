"""Paired comparison of two evaluated runs on the same test images (used by ``tools/compare.py``).

Both runs' per-image outcomes are aligned by file name; one bootstrap index matrix resamples the images of
both at once, so each resample gives a paired difference A - B of every metric. Reported per metric: A, B,
A - B with its percentile interval and two-sided bootstrap p-value, and for the per-image right / wrong metrics
(CorLoc variants, accuracy) McNemar's exact test on the discordant images.
"""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from .bootstrap import bootstrap_indices, mcnemar_exact, paired_bootstrap
from .metrics import auc_terms, estimate, ratio_terms
from .results_io import ResultsError

#: Metrics whose per-image terms are right / wrong, so McNemar's test applies.
BINARY_PREFIXES = ("CorLoc", "Accuracy")


def _list(names, limit=5):
    names = sorted(str(n) for n in names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def align_runs(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray], name_a: str = "A",
               name_b: str = "B") -> Tuple[Mapping[str, np.ndarray], Dict[str, np.ndarray]]:
    """Reorder run B's per-image columns to run A's image order, after checking both hold the same images with
    the same ground truth. Raises ResultsError naming the images that differ. Returns (columns_a, columns_b)."""
    files_a, files_b = list(columns_a["file_name"]), list(columns_b["file_name"])
    only_a, only_b = set(files_a) - set(files_b), set(files_b) - set(files_a)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} images only in {name_a}: {_list(only_a)}")
        if only_b:
            parts.append(f"{len(only_b)} images only in {name_b}: {_list(only_b)}")
        raise ResultsError(f"{name_a} ({len(files_a)} images) and {name_b} ({len(files_b)} images) were not "
                           f"evaluated on the same test images: " + "; ".join(parts))
    position = {f: i for i, f in enumerate(files_b)}
    order = np.asarray([position[f] for f in files_a], dtype=np.int64)
    columns_b = {k: np.asarray(v)[order] for k, v in columns_b.items()}
    for column in ("image_label", "num_gt", "has_mass"):
        differ = np.asarray(columns_a[column]) != columns_b[column]
        if differ.any():
            raise ResultsError(f"{name_a} and {name_b} disagree on the ground truth ({column}) of "
                               f"{int(differ.sum())} images: {_list(np.asarray(files_a)[differ])}")
    return columns_a, columns_b


def compare_runs(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray], num_samples: int = 2000,
                 seed: int = 0, level: float = 0.95, name_a: str = "A",
                 name_b: str = "B") -> "OrderedDict[str, Dict[str, Any]]":
    """Paired comparison of two runs (columns as from ``results_io.read_per_image``).

    Returns an OrderedDict metric -> {a, b, diff, ci (lo, hi), p_value, mcnemar (dict or None), n} where
    ``n`` is the number of images the metric is defined on.
    """
    columns_a, columns_b = align_runs(columns_a, columns_b, name_a, name_b)
    indices = bootstrap_indices(len(columns_a["file_name"]), num_samples, seed)
    est_a, est_b = estimate(columns_a, indices), estimate(columns_b, indices)
    terms_a, terms_b = ratio_terms(columns_a), ratio_terms(columns_b)
    aucs = auc_terms(columns_a)
    out = OrderedDict()
    for name in est_a:
        (a, samples_a), (b, samples_b) = est_a[name], est_b[name]
        test = paired_bootstrap(samples_a, samples_b, level)
        mcnemar, n = None, len(columns_a["file_name"])
        if name in aucs:
            n = int(np.sum(np.asarray(aucs[name][1]) | np.asarray(aucs[name][2])))
        if name in terms_a:
            mask = np.asarray(terms_a[name][1]) > 0
            n = int(mask.sum())
            if name.startswith(BINARY_PREFIXES):
                right_a = np.asarray(terms_a[name][0], bool)[mask]
                right_b = np.asarray(terms_b[name][0], bool)[mask]
                mcnemar = mcnemar_exact(right_a, right_b)
        out[name] = {"a": a, "b": b, "diff": a - b, "ci": test["ci"], "p_value": test["p_value"],
                     "mcnemar": mcnemar, "n": n}
    return out


def explain_difference(result, metric: str, name_a: str = "A", name_b: str = "B", level: float = 0.95,
                       alpha: float = 0.05) -> str:
    """One plain sentence on what the paired difference in ``metric`` means: both values, the difference with its
    confidence interval, and whether the test says it could be chance (McNemar's p for per-image right / wrong
    metrics, clustered when the result has ``mcnemar_clustered``, else the bootstrap p; against ``alpha``, after
    Holm's adjustment when the result carries ``holm_p``).

    Args:
        result: :func:`compare_runs`'s output.
        metric: a key of ``result``, e.g. ``"CorLoc"`` or ``"CorLoc-malignant"``.
    Raises:
        ValueError naming the metrics there are, for an unknown ``metric``.
    """
    if metric not in result:
        raise ValueError(f"no metric {metric!r} in the comparison; there are: {', '.join(result)}")
    r = result[metric]
    percent = metric.startswith(BINARY_PREFIXES)
    unit, points, digits = ("%", " points", 1) if percent else ("", "", 3)
    if r.get("mcnemar_clustered") is not None:
        p, test = r["mcnemar_clustered"]["p_value"], "the clustered McNemar test (near-duplicate groups)"
    elif r["mcnemar"] is not None:
        p, test = r["mcnemar"]["p_value"], "McNemar's exact test"
    else:
        p, test = r["p_value"], "the paired bootstrap"
    a, b = f"{r['a']:.{digits}f}{unit}", f"{r['b']:.{digits}f}{unit}"
    sentence = (f"{metric} on {r['n']} images: {name_a} {a} vs {name_b} {b}, a difference of "
                f"{r['diff']:+.{digits}f}{points} ({round(100 * level)}% CI {r['ci'][0]:+.{digits}f} "
                f"to {r['ci'][1]:+.{digits}f}); ")
    said = f"{test} gives p = {p:.2g}"
    holm = r.get("holm_p")
    if holm is not None and np.isfinite(holm):  # a family of comparisons: decide on the adjusted p
        said, p = said + f" ({holm:.2g} after Holm's adjustment for the other comparisons)", holm
    if p < alpha and r["diff"] != 0:
        better = name_a if r["diff"] > 0 else name_b
        return sentence + f"{said}, so a gap this large is unlikely to be chance: {better} is better."
    return sentence + f"{said}, so this could be chance: these images cannot tell the two models apart."
