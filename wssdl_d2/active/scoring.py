"""Acquisition functions: how much a box drawn by an expert would help, per weakly labelled image.

Every score lies in [0, 1], higher = more useful to annotate. They use what the image label already tells
(benign or malignant, so the class y of its mass is known) and the model's view of the image
(:class:`~wssdl_d2.inference.analysis.ImageAnalysis`):

- ``moi_uncertainty`` = 1 - p_y(MoI): how unsure the model is that the mass of interest it would train on
  (the MIL rule's proposal) is of the image's class (BoostMIS's "uncertain samples go to the expert").
- ``moi_entropy`` = H(p(MoI)) / log(K + 1): normalised Shannon entropy of the MoI's class distribution over
  (benign, malignant, background).
- ``label_disagreement`` = (1 + s_other - s_y) / 2, clipped to [0, 1], where s_y is the best detection score of
  the image's class and s_other of the other class (0 without one): 0 when the detections agree confidently
  with the label, 1/2 when they are as sure of either class, 1 when only the wrong class is found.
- ``combined`` (the default) = the mean of the three.
- ``random``: uniform random numbers (the baseline of the simulated annotator), seeded.

Only images with a mass (labels benign / malignant) are ranked: a normal image has no box to draw. The
images a model is confident about (low score, consistent top detection) are the pseudo-label candidates of
:mod:`wssdl_d2.pseudo.selection`; :func:`rank_images` marks them.
"""
import math
from typing import Dict, Iterable, List, Sequence

import numpy as np

from ..data.labels import MASS_LABELS, image_label_to_class, other_class

ACQUISITIONS = ("combined", "moi_uncertainty", "moi_entropy", "label_disagreement", "random")


def moi_uncertainty(analysis) -> float:
    """1 - p_y(MoI) for an image of label y in {1, 2} (class y - 1)."""
    return float(np.clip(1.0 - analysis.moi_probs[image_label_to_class(analysis.image_label)], 0.0, 1.0))


def moi_entropy(analysis) -> float:
    """Normalised entropy of the MoI's (K + 1)-class distribution, in [0, 1]."""
    p = np.clip(np.asarray(analysis.moi_probs, dtype=np.float64), 1e-12, 1.0)
    p = p / p.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(p)))


def label_disagreement(analysis) -> float:
    """(1 + s_other - s_y) / 2 in [0, 1] from the best detection score of each class."""
    own = image_label_to_class(analysis.image_label)
    s_y, s_other = analysis.best_score(own), analysis.best_score(other_class(own))
    return float(np.clip((1.0 + s_other - s_y) / 2.0, 0.0, 1.0))


def _has_moi(analysis):
    return bool(np.isfinite(np.asarray(analysis.moi_probs, dtype=np.float64)).all())


_COMPONENTS = {"moi_uncertainty": moi_uncertainty, "moi_entropy": moi_entropy, "label_disagreement": label_disagreement}


def component_scores(analysis) -> Dict[str, float]:
    """{component: score} of one mass-labelled analysis; without a MoI (no proposal) the MoI scores are 1."""
    return {name: fn(analysis) if name == "label_disagreement" or _has_moi(analysis) else 1.0
            for name, fn in _COMPONENTS.items()}


def acquisition_scores(analyses: Sequence, method: str = "combined", seed: int = 0) -> np.ndarray:
    """(N,) float64 scores of mass-labelled analyses under ``method`` (one of :data:`ACQUISITIONS`). An image
    without proposals (no MoI) gets the highest MoI scores: the model found nothing there."""
    if method not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, not {method!r}")
    bad = [a.file_name for a in analyses if a.image_label not in MASS_LABELS]
    if bad:
        raise ValueError(f"only benign / malignant images can be scored (a normal image has no box): {bad[:5]}")
    if method == "random":
        return np.random.default_rng(seed).random(len(analyses))
    parts = [component_scores(a) for a in analyses]
    if method == "combined":
        return np.asarray([np.mean(list(p.values())) for p in parts], dtype=np.float64).reshape(-1)
    return np.asarray([p[method] for p in parts], dtype=np.float64).reshape(-1)


def rank_images(analyses: Sequence, method: str = "combined", seed: int = 0,
                pseudo_keys: Iterable[str] = ()) -> List[dict]:
    """Rows (dicts) for the mass-labelled analyses, most useful to annotate first: ``rank`` (1 = first),
    ``file_name``, ``image_label``, ``score`` and every component score, the top detection, and
    ``pseudo_candidate`` (the file name is in ``pseudo_keys``: the self-training rule would pseudo-label it).
    Normal images are left out."""
    masses = [a for a in analyses if a.image_label in MASS_LABELS]
    scores = acquisition_scores(masses, method, seed)
    order = sorted(range(len(masses)), key=lambda i: (-scores[i], masses[i].file_name))
    pseudo_keys = set(pseudo_keys)
    rows = []
    for position, i in enumerate(order, start=1):
        a = masses[i]
        top = a.top_detection()
        rows.append({
            "rank": position, "file_name": a.file_name, "image_label": a.image_label, "score": float(scores[i]),
            **component_scores(a),
            "top_class": "" if top is None else top[1], "top_score": "" if top is None else top[2],
            "top_box": "" if top is None else " ".join(f"{v:.1f}" for v in top[0]),
            "moi_box": " ".join(f"{v:.1f}" for v in a.moi_box), "pseudo_candidate": a.file_name in pseudo_keys,
        })
    return rows
