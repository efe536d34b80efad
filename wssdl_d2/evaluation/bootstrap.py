"""Bootstrap confidence intervals and paired tests over test images, vectorised with numpy.

One resampling is a (B, N) matrix of image indices drawn with replacement (:func:`bootstrap_indices`); every
statistic is evaluated on all B resamples at once, and the same matrix is reused for every metric of a run (and
for both runs of a paired comparison), so the intervals of one evaluation are coherent.

Intervals are percentile intervals: the (1 - level) / 2 and (1 + level) / 2 quantiles of the B resampled values
(resamples where a statistic is undefined, e.g. no malignant image drawn, are left out). A ratio of per-image
sums (CorLoc, false positives per normal image) on every resample is ``safe_divide(counts @ num, counts @ den)``
with ``counts`` = :func:`resample_counts`; :func:`wssdl_d2.evaluation.metrics.estimate` does all metrics at once.
"""
from typing import Dict, Sequence, Tuple

import numpy as np
from scipy.stats import binomtest, chi2


def bootstrap_indices(num_images: int, num_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """(num_samples, num_images) int64 matrix of image indices drawn with replacement, reproducible by seed."""
    if num_images < 1 or num_samples < 1:
        raise ValueError(f"bootstrap needs at least one image and one sample, got {num_images} and {num_samples}")
    return np.random.default_rng(seed).integers(0, num_images, size=(num_samples, num_images))


def resample_counts(indices: np.ndarray, num_images: int) -> np.ndarray:
    """How often each image was drawn in each resample: (B, N) indices -> (B, N) float64 multiplicities."""
    indices = np.asarray(indices)
    offsets = np.arange(len(indices))[:, None] * num_images
    counts = np.bincount((indices + offsets).ravel(), minlength=len(indices) * num_images)
    return counts.reshape(len(indices), num_images).astype(np.float64)


def percentile_interval(samples, level: float = 0.95) -> Tuple[float, float]:
    """(lo, hi) percentile interval of resampled values (NaNs ignored; (nan, nan) when all are NaN)."""
    samples = np.asarray(samples, dtype=np.float64)
    if not np.isfinite(samples).any():
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def safe_divide(numerator, denominator) -> np.ndarray:
    """Elementwise numerator / denominator, NaN where the denominator is not positive."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def bootstrap_p_value(differences) -> float:
    """Two-sided bootstrap p-value for "the difference is 0": twice the smaller tail of the resampled
    differences at 0, with the +1 correction ``(count + 1) / (B + 1)``, capped at 1. (B,) -> float."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan")
    tail = min(np.count_nonzero(d <= 0), np.count_nonzero(d >= 0))
    return float(min(1.0, 2.0 * (tail + 1) / (len(d) + 1)))


def paired_bootstrap(values_a, values_b, level: float = 0.95) -> Dict[str, object]:
    """Difference of two runs' statistics on the same resamples.

    Args:
        values_a, values_b: (B,) resampled values of run A and run B, computed with the same index matrix.
    Returns:
        dict with ``ci`` (lo, hi) of A - B and the two-sided ``p_value`` (:func:`bootstrap_p_value`).
    """
    diff = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    lo, hi = percentile_interval(diff, level)
    return {"ci": (lo, hi), "p_value": bootstrap_p_value(diff)}


def mcnemar_exact(correct_a, correct_b) -> Dict[str, object]:
    """McNemar's exact test on paired binary outcomes (N,), (N,).

    Returns dict: ``a_only`` (A right, B wrong), ``b_only`` and the exact two-sided binomial p-value of
    ``a_only`` out of ``a_only + b_only`` discordant images at p = 0.5 (1.0 when there is none).
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs paired outcomes, got shapes {a.shape} and {b.shape}")
    a_only, b_only = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p)}


def mcnemar_clustered(correct_a, correct_b, clusters) -> Dict[str, object]:
    """McNemar's test for paired binary outcomes that come in clusters (near-duplicate groups of one lesion), after
    Durkalski et al., Stat Med 2003: with ``d_k`` = (A right, B wrong) - (A wrong, B right) in cluster k, the
    statistic ``(sum_k d_k)^2 / sum_k d_k^2`` is referred to chi-square with 1 degree of freedom. With one image per
    cluster it is the usual (asymptotic) McNemar statistic.

    Args:
        correct_a, correct_b: (N,) paired outcomes.
        clusters: (N,) cluster label of each image (any hashable values).
    Returns:
        dict: ``a_only``, ``b_only`` (discordant images, as :func:`mcnemar_exact`), ``clusters`` (clusters with a
        discordant image) and ``p_value`` (1.0 when no image is discordant).
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    clusters = np.asarray(clusters)
    if a.shape != b.shape or clusters.shape != a.shape:
        raise ValueError(f"clustered McNemar needs paired outcomes and a cluster per image, got shapes {a.shape}, "
                         f"{b.shape} and {clusters.shape}")
    _, cluster_index = np.unique(clusters, return_inverse=True)
    per_cluster = np.bincount(cluster_index, weights=a.astype(np.float64) - b.astype(np.float64))
    a_only, b_only = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    spread = float(np.sum(per_cluster ** 2))
    p = float(chi2.sf(float(per_cluster.sum()) ** 2 / spread, df=1)) if spread > 0 else 1.0
    return {"a_only": a_only, "b_only": b_only, "clusters": int(np.count_nonzero(per_cluster != 0)), "p_value": p}


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm, Scand J Stat 1979): controls the family-wise
    error rate; reject every hypothesis whose adjusted p is below the level. NaN entries (a test that could not be
    made) are kept as NaN and do not count in the family. (m,) -> (m,) float64, each in [p, 1].
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"Holm's adjustment needs a flat list of p-values, got shape {p.shape}")
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    if not len(valid):
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
