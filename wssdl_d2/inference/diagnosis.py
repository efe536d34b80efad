"""Image-level diagnosis (normal / benign / malignant) from an image's detections.

The rule is the one the CorLoc evaluator scores (``predicted_label`` of
:func:`wssdl_d2.evaluation.outcomes.image_outcome`), so the demo and the evaluation agree: the image is
*normal* when no detection reaches the score threshold ``tau`` (``WSSDL.EVAL.SCORE_THRESH``), else it takes the
class of its top-scoring detection. Its ``probability`` is that detection's score, or ``1 - max score`` for a
normal image. ``scores`` gives per label: normal ``1 - max score``, benign / malignant the best detection score
of that class (0 without one); the detector scores each box for its winning class only, so these three are
confidences, not a distribution that sums to 1.

With a calibration (:mod:`wssdl_d2.evaluation.calibration`, shipped with a zoo model or ``tools/demo.py
--calibration``), ``p_malignant`` is the calibrated probability of malignancy computed from the uncalibrated
malignancy score ``scores["malignant"]``; None without one.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..data.labels import BENIGN, BENIGN_CLASS, IMAGE_LABEL_NAMES, MALIGNANT, NORMAL
from ..evaluation.outcomes import image_outcome


@dataclass
class Diagnosis:
    """``label`` 0 normal, 1 benign, 2 malignant; ``name`` its name; ``probability`` in [0, 1];
    ``scores`` {name: confidence} for the three labels (``scores["malignant"]``: the uncalibrated malignancy
    score); ``p_malignant`` the calibrated probability of malignancy (None without a calibration)."""

    label: int
    name: str
    probability: float
    scores: dict = field(default_factory=dict)
    p_malignant: Optional[float] = None


def diagnose(scores, classes, tau: float = 0.5) -> Diagnosis:
    """Diagnosis of one image from its detections.

    Args:
        scores: (D,) detection scores in [0, 1]. classes: (D,) detection classes (0 benign, 1 malignant).
        tau: score threshold a detection needs to make the image abnormal.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    outcome, _, _ = image_outcome(NORMAL, np.zeros((0, 4)), [], np.zeros((len(scores), 4)), scores, classes, tau=tau)
    label = outcome["predicted_label"]
    top = outcome["abnormality_score"]
    per_label = {
        IMAGE_LABEL_NAMES[NORMAL]: 1.0 - top,
        IMAGE_LABEL_NAMES[BENIGN]: float(scores[classes == BENIGN_CLASS].max()) if (classes == BENIGN_CLASS).any() else 0.0,
        IMAGE_LABEL_NAMES[MALIGNANT]: outcome["malignancy_score"],
    }
    return Diagnosis(label, IMAGE_LABEL_NAMES[label], top if label != NORMAL else 1.0 - top, per_label)
