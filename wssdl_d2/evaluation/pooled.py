"""Pooled cross-validation numbers from the per-image outcomes of every fold.

Each image of the pool is tested once, by the model trained without its fold; the per-image outcome tables of the K
folds (``corloc_per_image.csv``, read with :func:`wssdl_d2.evaluation.results_io.read_per_image`) are concatenated
into one table with a ``fold`` column. Every metric is then the usual ratio over the pooled images (e.g. CorLoc = hits
/ images with a mass, over all folds), its interval a percentile bootstrap stratified by fold
(:func:`.stratified.stratified_bootstrap_indices`), and two configs are compared image by image: the difference with
its stratified paired-bootstrap interval and McNemar's exact p on the discordant images. Given the images' clusters
(near-duplicate groups of one lesion), whole clusters are resampled within folds instead of images
(:func:`.stratified.cluster_bootstrap_counts`) and a clustered McNemar p is added
(:func:`.bootstrap.mcnemar_clustered`). The comparison has
:func:`wssdl_d2.evaluation.paired.compare_runs`'s format, so :func:`~wssdl_d2.evaluation.paired.explain_difference`
phrases it.
"""
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .bootstrap import bootstrap_indices, mcnemar_clustered, mcnemar_exact, paired_bootstrap, percentile_interval
from .metrics import estimate, ratio_terms
from .paired import BINARY_PREFIXES, align_runs
from .results_io import ResultsError, cluster_labels  # noqa: F401  (cluster_labels: re-exported)
from .stratified import cluster_bootstrap_counts, stratified_bootstrap_indices

#: The metrics the cross-validation report shows (the rest of ``estimate`` is in the JSON).
HEADLINE_METRICS = ("CorLoc", "CorLoc_top1")


def pool_folds(columns_per_fold: Mapping[int, Mapping[str, np.ndarray]], name: str = "run") -> Dict[str, np.ndarray]:
    """Concatenate per-fold outcome columns ({fold: columns (N_k,)}) into one table (N = sum N_k,) with an int64
    ``fold`` column. Raises ResultsError when an image appears in two folds (the folds were not disjoint)."""
    if not columns_per_fold:
        raise ResultsError(f"{name}: no fold to pool")
    folds = sorted(columns_per_fold)
    keys = list(columns_per_fold[folds[0]])
    pooled = {k: np.concatenate([np.asarray(columns_per_fold[f][k]) for f in folds]) for k in keys}
    pooled["fold"] = np.concatenate([np.full(len(columns_per_fold[f]["file_name"]), f, np.int64) for f in folds])
    files, counts = np.unique(pooled["file_name"].astype(str), return_counts=True)
    if (counts > 1).any():
        twice = ", ".join(files[counts > 1][:5])
        raise ResultsError(f"{name}: {int((counts > 1).sum())} images were tested in more than one fold ({twice}); "
                           "the folds must be disjoint")
    return pooled


def _summaries(columns, indices, level):
    return OrderedDict((metric, {"value": value, "ci": percentile_interval(samples, level)})
                       for metric, (value, samples) in estimate(columns, indices).items())


def pooled_metrics(pooled: Mapping[str, np.ndarray], num_samples: int = 2000, seed: int = 0,
                   level: float = 0.95, clusters: Optional[np.ndarray] = None) -> "OrderedDict[str, dict]":
    """Every metric of :func:`wssdl_d2.evaluation.metrics.estimate` over the pooled images: metric -> {value, ci
    (lo, hi) from the bootstrap stratified by ``pooled["fold"]``, n (images it is defined on)}. Percent for CorLoc.
    ``clusters`` (N,): resample these groups of images within folds instead of single images."""
    out = OrderedDict((metric, {"value": value, "ci": percentile_interval(samples, level)})
                      for metric, (value, samples) in estimate(pooled, **_resampling(pooled, num_samples, seed,
                                                                                     clusters)).items())
    terms = ratio_terms(pooled)
    for metric, summary in out.items():
        summary["n"] = int(np.sum(np.asarray(terms[metric][1]) > 0)) if metric in terms else len(pooled["fold"])
    return out


def per_fold_metrics(pooled: Mapping[str, np.ndarray], num_samples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> "OrderedDict[int, OrderedDict]":
    """fold -> metric -> {value, ci, n}: each fold's numbers alone, with a plain bootstrap over its images."""
    out = OrderedDict()
    for fold in np.unique(pooled["fold"]):
        mask = pooled["fold"] == fold
        columns = {k: np.asarray(v)[mask] for k, v in pooled.items()}
        summaries = _summaries(columns, bootstrap_indices(int(mask.sum()), num_samples, seed), level)
        terms = ratio_terms(columns)
        for metric, summary in summaries.items():
            summary["n"] = int(np.sum(np.asarray(terms[metric][1]) > 0)) if metric in terms else int(mask.sum())
        out[int(fold)] = summaries
    return out


def _resampling(pooled, num_samples, seed, clusters=None) -> dict:
    """The keyword argument of :func:`estimate` for a bootstrap within folds: of images, or of ``clusters``."""
    if clusters is None:
        return {"indices": stratified_bootstrap_indices(pooled["fold"], num_samples, seed)}
    if len(clusters) != len(pooled["fold"]):
        raise ResultsError(f"{len(clusters)} cluster labels for {len(pooled['fold'])} pooled images")
    return {"counts": cluster_bootstrap_counts(pooled["fold"], clusters, num_samples, seed)}


def compare_pooled(pooled_a: Mapping[str, np.ndarray], pooled_b: Mapping[str, np.ndarray], num_samples: int = 2000,
                   seed: int = 0, level: float = 0.95, name_a: str = "A", name_b: str = "B",
                   metrics: Sequence[str] = None, clusters: Optional[np.ndarray] = None) -> "OrderedDict[str, dict]":
    """Paired comparison A - B of two configs' pooled outcomes (same images, same folds).

    Returns metric -> {a, b, diff, ci (lo, hi), p_value (bootstrap), mcnemar ({a_only, b_only, p_value} for
    per-image right / wrong metrics, else None), n}: :func:`wssdl_d2.evaluation.paired.compare_runs`'s format, with
    one index matrix resampled within folds for both configs.
    ``clusters`` (N,), in ``pooled_a``'s image order: resample these groups within folds instead of images, and add
    ``mcnemar_clustered`` ({a_only, b_only, clusters, p_value}) beside the exact McNemar.
    Raises ResultsError when the images, their ground truth or their folds differ.
    """
    pooled_a, pooled_b = align_runs(dict(pooled_a), dict(pooled_b), name_a, name_b)
    moved = np.asarray(pooled_a["fold"]) != np.asarray(pooled_b["fold"])
    if moved.any():
        files = ", ".join(map(str, np.asarray(pooled_a["file_name"])[moved][:5]))
        raise ResultsError(f"{name_a} and {name_b} tested {int(moved.sum())} images in different folds ({files}); "
                           "were they trained on the same fold files?")
    resampling = _resampling(pooled_a, num_samples, seed, clusters)
    est_a, est_b = estimate(pooled_a, **resampling), estimate(pooled_b, **resampling)
    terms_a, terms_b = ratio_terms(pooled_a), ratio_terms(pooled_b)
    out = OrderedDict()
    for metric in (metrics or est_a):
        (a, samples_a), (b, samples_b) = est_a[metric], est_b[metric]
        test = paired_bootstrap(samples_a, samples_b, level)
        mcnemar, clustered, n = None, None, len(pooled_a["file_name"])
        if metric in terms_a:
            mask = np.asarray(terms_a[metric][1]) > 0
            n = int(mask.sum())
            if metric.startswith(BINARY_PREFIXES):
                right_a = np.asarray(terms_a[metric][0], bool)[mask]
                right_b = np.asarray(terms_b[metric][0], bool)[mask]
                mcnemar = mcnemar_exact(right_a, right_b)
                if clusters is not None:
                    clustered = mcnemar_clustered(right_a, right_b, np.asarray(clusters)[mask])
        out[metric] = {"a": a, "b": b, "diff": a - b, "ci": test["ci"], "p_value": test["p_value"],
                       "mcnemar": mcnemar, "n": n}
        if clusters is not None:
            out[metric]["mcnemar_clustered"] = clustered
    return out
