"""Image-level diagnosis metrics: ROC AUC (Mann-Whitney, on bootstrap resamples too), ROC curve, confusion matrix.

The AUC of scores s for positives P against negatives Q is the probability that a random positive scores
higher than a random negative, ties counting one half:
``AUC = sum_{i in P, j in Q} w_i w_j ([s_i > s_j] + 0.5 [s_i == s_j]) / (sum_P w_i * sum_Q w_j)``.
With w = 1 this is the Mann-Whitney U statistic divided by |P| |Q|; with w = bootstrap multiplicities it is the
AUC of a resample, so all B resamples are computed at once in O(B N) after one sort.
"""
from typing import Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from .bootstrap import safe_divide


def weighted_auc(scores: npt.ArrayLike, positive: npt.ArrayLike, negative: npt.ArrayLike,
                 weights: Optional[npt.ArrayLike] = None) -> Union[float, np.ndarray]:
    """ROC AUC of ``scores`` for ``positive`` vs ``negative`` images.

    Args:
        scores: (N,) float. positive, negative: (N,) bool masks (images in neither are ignored).
        weights: None (every image once) or (B, N) multiplicities (:func:`bootstrap.resample_counts`).
    Returns:
        float (weights None) or (B,) float64; NaN where a class has zero weight.
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    neg = np.asarray(negative, dtype=bool) & ~pos
    single = weights is None
    w = np.ones((1, len(scores))) if single else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(scores):
        raise ValueError(f"weights must be (B, {len(scores)}), got {w.shape}")
    # Only the images of the two classes, sorted by score; equal scores form one group.
    used = np.flatnonzero(pos | neg)
    used = used[np.argsort(scores[used], kind="stable")]
    s = scores[used]
    if len(s):
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        w_used = w[:, used]
        w_pos = np.add.reduceat(w_used * pos[used], starts, axis=1)  # (B, G) positive weight per score
        w_neg = np.add.reduceat(w_used * neg[used], starts, axis=1)
        below = np.cumsum(w_neg, axis=1) - w_neg  # negative weight strictly below each score
        numerator = np.sum(w_pos * (below + 0.5 * w_neg), axis=1)
        denominator = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    else:
        numerator = denominator = np.zeros(len(w))
    auc = safe_divide(numerator, denominator)
    return float(auc[0]) if single else auc


def roc_curve(scores: npt.ArrayLike, positive: npt.ArrayLike,
              negative: npt.ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points over all thresholds (an image is called positive when its score >= threshold).

    Returns (fpr, tpr, thresholds), each (T + 1,), starting at (0, 0) with threshold +inf; NaN-free only when
    both classes are present (otherwise the missing rate is NaN).
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    neg = np.asarray(negative, dtype=bool) & ~pos
    thresholds = np.r_[np.inf, np.unique(scores[pos | neg])[::-1]]
    sorted_pos, sorted_neg = np.sort(scores[pos]), np.sort(scores[neg])
    tp = len(sorted_pos) - np.searchsorted(sorted_pos, thresholds, side="left")
    fp = len(sorted_neg) - np.searchsorted(sorted_neg, thresholds, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / len(sorted_pos) if len(sorted_pos) else np.full(len(thresholds), np.nan)
        fpr = fp / len(sorted_neg) if len(sorted_neg) else np.full(len(thresholds), np.nan)
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def confusion_matrix(true_labels: npt.ArrayLike, predicted_labels: npt.ArrayLike, num_labels: int = 3) -> np.ndarray:
    """(num_labels, num_labels) int64 counts: rows the true label, columns the predicted one."""
    true_labels = np.asarray(true_labels, dtype=np.int64)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"{true_labels.shape} true labels but {predicted_labels.shape} predictions")
    for name, labels in (("true", true_labels), ("predicted", predicted_labels)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_labels):
            raise ValueError(f"{name} labels must lie in [0, {num_labels}), got {np.unique(labels).tolist()}")
    flat = np.bincount(true_labels * num_labels + predicted_labels, minlength=num_labels * num_labels)
    return flat.reshape(num_labels, num_labels)
