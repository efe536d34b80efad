"""Every number of a CorLoc evaluation, with bootstrap intervals, from a table of per-image outcomes.

Metric names (the keys of :func:`flat_metrics`, as they appear in TensorBoard under ``corloc/``; names with a
"-" are per class):

=======================  ======================================================================  =======
``CorLoc``               authors' CorLoc (any detection of the image's class, score >= tau, IoU   percent
                         > thresh) over images with a mass; ``-benign`` / ``-malignant`` per class
``CorLoc_top1``          top-1 CorLoc (the class's highest-scoring detection only)                percent
``FP_per_normal``        detections with score >= tau per normal image                            count
``AUC_BvsM``             ROC AUC of the malignancy score, malignant vs benign images              0..1
``AUC_NvsMass``          ROC AUC of the abnormality score, images with a mass vs normal images    0..1
``Accuracy``             normal / benign / malignant image label predicted right (all images)     percent
``FROC_sens@X``          FROC sensitivity at <= X false positives per image; ``FROC_mean`` the    0..1
                         mean over X in 1/8 .. 8
=======================  ======================================================================  =======

Each estimated metric ``M`` also has ``M_lo`` / ``M_hi``, its bootstrap interval (CI_LEVEL, percentile).
"""
from collections import OrderedDict
from typing import Mapping, Optional

import numpy as np

from ..data.labels import BENIGN, IMAGE_LABEL_NAMES, MALIGNANT, NORMAL
from .bootstrap import bootstrap_indices, percentile_interval, resample_counts, safe_divide
from .diagnosis import confusion_matrix, roc_curve, weighted_auc
from .froc import FPPI_POINTS, froc_curve, operating_point, sensitivity_at

#: Written into corloc.json so the file says what its numbers mean.
DEFINITIONS = {
    "CorLoc": "percent of images with a mass where a detection of the image's class with score >= tau has "
              "IoU > iou_thresh with a ground-truth box (the authors' definition)",
    "CorLoc_top1": "percent of images with a mass where the highest-scoring detection of the image's class "
                   "(any score) has IoU > iou_thresh with a ground-truth box",
    "FP_per_normal": "detections with score >= tau per normal image",
    "AUC_BvsM": "ROC AUC of the malignancy score (top malignant-class detection score, 0 if none), "
                "malignant vs benign images",
    "AUC_NvsMass": "ROC AUC of the abnormality score (top detection score, 0 if none), mass vs normal images",
    "Accuracy": "percent of images whose label is predicted right: normal when no detection reaches tau, "
                "else the class of the top-scoring detection",
    "FROC": "lesion sensitivity vs false positives per image (all images) over score thresholds; a false "
            "positive overlaps no ground-truth box of its class with IoU > iou_thresh",
    "intervals": "percentile bootstrap intervals over test images (one seeded index matrix for all metrics)",
}


def ratio_terms(columns: Mapping[str, np.ndarray]) -> "OrderedDict[str, tuple]":
    """Metrics that are a ratio of per-image sums: name -> (numerator (N,), denominator (N,), scale)."""
    label = columns["image_label"]
    mass = columns["has_mass"]
    normal = (label == NORMAL).astype(np.float64)
    terms = OrderedDict()
    for prefix, hit in (("CorLoc", columns["hit_any"]), ("CorLoc_top1", columns["hit_top1"])):
        terms[prefix] = (hit & mass, mass, 100.0)
        for k in (BENIGN, MALIGNANT):
            cls = IMAGE_LABEL_NAMES[k]
            in_class = mass & (label == k)
            terms[f"{prefix}-{cls}"] = (hit & in_class, in_class, 100.0)
    terms["FP_per_normal"] = (columns["fp_at_tau"] * normal, normal, 1.0)
    terms["Accuracy"] = (columns["predicted_label"] == label, np.ones(len(label)), 100.0)
    return terms


def auc_terms(columns: Mapping[str, np.ndarray]) -> "OrderedDict[str, tuple]":
    """Metrics that are an AUC: name -> (scores (N,), positive mask (N,), negative mask (N,))."""
    label = columns["image_label"]
    return OrderedDict([
        ("AUC_BvsM", (columns["malignancy_score"], label == MALIGNANT, label == BENIGN)),
        ("AUC_NvsMass", (columns["abnormality_score"], label != NORMAL, label == NORMAL)),
    ])


def estimate(columns: Mapping[str, np.ndarray], indices: Optional[np.ndarray] = None, *,
             counts: Optional[np.ndarray] = None) -> "OrderedDict[str, tuple]":
    """Point estimate and the B resampled values of every ratio / AUC metric.

    Args:
        columns: the per-image columns (``OutcomeTable.columns``), N images.
        indices: (B, N) bootstrap index matrix over those images, or
        counts: (B, N) multiplicity of each image in each resample instead (a cluster bootstrap,
            :func:`.stratified.cluster_bootstrap_counts`). Exactly one of the two.
    Returns:
        OrderedDict name -> (value float, samples (B,)).
    """
    if (indices is None) == (counts is None):
        raise ValueError("estimate needs either a bootstrap index matrix or a count matrix, not both or neither")
    out = OrderedDict()
    if counts is None:
        counts = resample_counts(indices, len(columns["image_label"]))
    counts = np.asarray(counts, dtype=np.float64)
    terms = ratio_terms(columns)
    # Every numerator and denominator as one (N, 2T) matrix: all resampled sums in one matrix product.
    stacked = np.column_stack([np.asarray(t[k], np.float64) for t in terms.values() for k in (0, 1)])
    sums, point_sums = counts @ stacked, stacked.sum(axis=0)
    for k, (name, (_, _, scale)) in enumerate(terms.items()):
        out[name] = (scale * float(safe_divide(point_sums[2 * k], point_sums[2 * k + 1])),
                     scale * safe_divide(sums[:, 2 * k], sums[:, 2 * k + 1]))
    for name, (scores, pos, neg) in auc_terms(columns).items():
        out[name] = (weighted_auc(scores, pos, neg), weighted_auc(scores, pos, neg, counts))
    return out


def compute_metrics(table, tau: float = 0.5, iou_thresh: float = 0.5, num_samples: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """The full evaluation report (a JSON-ready dict) of an :class:`~.outcomes.OutcomeTable`.

    Keys: ``settings``, ``counts``, ``metrics`` (name -> {value, lo, hi}), ``froc`` (curve points and
    summaries), ``diagnosis`` (confusion matrix, ROC curve points).
    """
    columns = table.columns
    n = len(table)
    if n == 0:
        raise ValueError("no images to evaluate")
    label = columns["image_label"]
    indices = bootstrap_indices(n, num_samples, seed)
    metrics = OrderedDict()
    for name, (value, samples) in estimate(columns, indices).items():
        lo, hi = percentile_interval(samples, level)
        metrics[name] = {"value": value, "lo": lo, "hi": hi}

    lesions, fps = table.lesion_scores, table.fp_scores
    curve = froc_curve(lesions, fps, n)
    at_x = sensitivity_at(curve)
    sens_tau, fppi_tau = operating_point(lesions, fps, n, tau)
    fpr, tpr, thr = roc_curve(columns["malignancy_score"], label == MALIGNANT, label == BENIGN)
    counts = OrderedDict(
        images=n, normal=int(np.sum(label == NORMAL)), benign=int(np.sum(label == BENIGN)),
        malignant=int(np.sum(label == MALIGNANT)),
        mass_images=int(np.sum(columns["has_mass"])), lesions=int(len(lesions)),
        benign_with_box=int(np.sum(columns["has_mass"] & (label == BENIGN))),
        malignant_with_box=int(np.sum(columns["has_mass"] & (label == MALIGNANT))),
    )
    return {
        "settings": {"tau": tau, "iou_thresh": iou_thresh, "bootstrap_samples": num_samples,
                     "bootstrap_seed": seed, "ci_level": level},
        "definitions": DEFINITIONS,
        "counts": counts,
        "metrics": metrics,
        "froc": {"thresholds": curve["thresholds"].tolist(), "fppi": curve["fppi"].tolist(),
                 "sensitivity": curve["sensitivity"].tolist(), "fppi_points": list(FPPI_POINTS),
                 "sensitivity_at": at_x, "mean_sensitivity": float(np.mean(at_x)),
                 "at_tau": {"sensitivity": sens_tau, "fppi": fppi_tau}},
        "diagnosis": {"labels": list(IMAGE_LABEL_NAMES),
                      "confusion_matrix": confusion_matrix(label, columns["predicted_label"]).tolist(),
                      "roc_benign_vs_malignant": {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                                                  "thresholds": thr.tolist()}},
    }


def flat_metrics(report: dict) -> "OrderedDict[str, float]":
    """The report's numbers as one flat OrderedDict name -> float (Detectron2's results format)."""
    flat = OrderedDict()
    for name, m in report["metrics"].items():
        flat[name] = m["value"]
        flat[name + "_lo"] = m["lo"]
        flat[name + "_hi"] = m["hi"]
    froc = report["froc"]
    for x, s in zip(froc["fppi_points"], froc["sensitivity_at"]):
        flat[f"FROC_sens@{x:g}"] = s
    flat["FROC_mean"] = froc["mean_sensitivity"]
    flat["FROC_sens@tau"] = froc["at_tau"]["sensitivity"]
    flat["FROC_fppi@tau"] = froc["at_tau"]["fppi"]
    flat["num_images"] = float(report["counts"]["images"])
    return flat
