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

What a user is told is one answer, :func:`stated_diagnosis`: without a calibration the rule above; with one, the
calibrated probability decides malignancy (malignant when P(malignant) >= :data:`MALIGNANT_PROBABILITY`,
otherwise benign when a detection reaches ``tau``, normal when none does), and the threshold is stated with it.
"""
from dataclasses import dataclass, field
from typing import Optional, Tuple

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
    tau: float = 0.5  # the score threshold of the rule


#: A calibrated probability of malignancy at or above this makes the stated diagnosis malignant.
MALIGNANT_PROBABILITY = 0.5


def stated_diagnosis(diagnosis: Diagnosis) -> Tuple[str, str]:
    """The one diagnosis shown to a user and its basis with the threshold, e.g. ``("benign", "P(malignant),
    calibrated: 0.34 < 0.50; a mass scores >= 0.50")`` (see the module docstring)."""
    tau, p = diagnosis.tau, diagnosis.p_malignant
    mass = diagnosis.label != NORMAL
    if p is None:
        if not mass:
            return diagnosis.name, f"no detection scores >= {tau:.2f}"
        return diagnosis.name, f"top detection {diagnosis.name}, score {diagnosis.probability:.2f} >= {tau:.2f}"
    if p >= MALIGNANT_PROBABILITY:
        return IMAGE_LABEL_NAMES[MALIGNANT], f"P(malignant), calibrated: {p:.2f} >= {MALIGNANT_PROBABILITY:.2f}"
    found = f"a mass scores >= {tau:.2f}" if mass else f"no detection scores >= {tau:.2f}"
    return (IMAGE_LABEL_NAMES[BENIGN if mass else NORMAL],
            f"P(malignant), calibrated: {p:.2f} < {MALIGNANT_PROBABILITY:.2f}; {found}")


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
    return Diagnosis(label, IMAGE_LABEL_NAMES[label], top if label != NORMAL else 1.0 - top, per_label, tau=float(tau))
