"""FROC: lesion sensitivity against false positives per image, over detection score thresholds.

At a threshold t, a ground-truth mass is found when a detection of its class with score >= t overlaps it with
IoU > the IoU threshold (its *lesion score* is the highest such score, -inf when none), and every detection with
score >= t that overlaps no ground-truth box of its class is a false positive (see ``outcomes``). So
``sensitivity(t) = #{lesion_score >= t} / #lesions`` and ``fppi(t) = #{fp_score >= t} / #images`` (all test
images, normal ones included).
"""
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import numpy.typing as npt

#: False-positive rates at which sensitivity is summarised (the usual FROC operating points).
FPPI_POINTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def froc_curve(lesion_scores: npt.ArrayLike, fp_scores: npt.ArrayLike, num_images: int) -> Dict[str, np.ndarray]:
    """FROC points, one per distinct detection score (threshold descending).

    Args:
        lesion_scores: (L,) per ground-truth mass, the best score of a detection that finds it (-inf: never).
        fp_scores: (F,) scores of all false-positive detections.
        num_images: number of test images the false positives are spread over.
    Returns:
        dict of (T,) arrays ``thresholds``, ``fppi``, ``sensitivity`` (sensitivity NaN when L = 0).
    """
    if num_images < 1:
        raise ValueError("FROC needs at least one image")
    lesions = np.sort(np.asarray(lesion_scores, dtype=np.float64))
    fps = np.sort(np.asarray(fp_scores, dtype=np.float64))
    found = lesions[np.isfinite(lesions)]
    thresholds = np.unique(np.r_[found, fps])[::-1]
    found_count = len(lesions) - np.searchsorted(lesions, thresholds, side="left")
    fp_count = len(fps) - np.searchsorted(fps, thresholds, side="left")
    sensitivity = found_count / len(lesions) if len(lesions) else np.full(len(thresholds), np.nan)
    return {"thresholds": thresholds, "fppi": fp_count / float(num_images),
            "sensitivity": np.asarray(sensitivity, dtype=np.float64)}


def sensitivity_at(curve: Mapping[str, np.ndarray], fppi_points: Sequence[float] = FPPI_POINTS) -> List[float]:
    """Best sensitivity with at most ``x`` false positives per image, for each x of ``fppi_points``.

    0 when no threshold is that strict (every point of the curve has more false positives). Returns a list.
    """
    fppi, sens = curve["fppi"], curve["sensitivity"]
    out = []
    for x in fppi_points:
        ok = fppi <= x
        out.append(float(np.max(sens[ok])) if ok.any() else 0.0)
    return out


def operating_point(lesion_scores: npt.ArrayLike, fp_scores: npt.ArrayLike, num_images: int,
                    threshold: float) -> Tuple[float, float]:
    """(sensitivity, fppi) at one score threshold (e.g. tau)."""
    lesions = np.asarray(lesion_scores, dtype=np.float64)
    fps = np.asarray(fp_scores, dtype=np.float64)
    sens = float(np.mean(lesions >= threshold)) if len(lesions) else float("nan")
    return sens, float(np.count_nonzero(fps >= threshold)) / num_images
