"""Which weak images become pseudo-labelled: the paper's rule, a fixed fraction (overall or per class), or
adaptive per-class bars.

Pure functions on :class:`Candidate` (one weak image: its label and its top detection), no model involved.

**Consistency** (paper, Table IV): an image is eligible when its most confident detection has the class of
its image label (benign image -> benign detection, malignant -> malignant). Normal images and images without a
detection are never eligible (there is no mass box to take).

**Fixed fraction**: the eligible images are ranked by that detection's score (its class probability), highest
first (ties by file name, so the order is reproducible), and the top ``round(fraction * eligible)`` are taken;
the fraction is of the *eligible* images, as in the paper ("keep ... rank ... move the top 50% / 75%").

**Class-balanced fraction** (``fraction_per_class``): the same fraction, taken within each class's eligible
images separately, so the pseudo labels keep the class mix of the eligible images. One ranking over both classes
favours the class the model scores more confidently: on BUSI, where two thirds of the weak masses are benign, the
overall top 50% was 93% benign (benchmarks/notes/busi_paper_tables.md,
"Self-training and active annotation").

**Adaptive per-class thresholds** (the idea of FlexMatch / BoostMIS: a class the model has learnt worse gets a
lower bar, so it is not starved of pseudo labels). The learning effect of class c is measured on the weak set
itself, whose image labels are known: ``r_c`` = the share of weak images labelled c whose top detection is of
class c with score >= ``tau`` (``ADAPTIVE.THRESH``). Normalised, ``beta_c = r_c / max(max_c' r_c', u)`` where
``u`` = the share of weak mass images with no such detection when ``warmup`` is on (FlexMatch's warm-up: while
most images are unlearnt every bar stays low), else ``r_c / max_c' r_c'``. The bar is
``T_c = max(min_thresh, M(beta_c) * tau)`` with ``M(x) = x / (2 - x)`` ("convex", FlexMatch) or ``M(x) = x``
("linear"); the best-learnt class keeps ``tau`` once warm-up is over. Eligible images whose top score reaches
their class's bar are taken.
"""
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import numpy.typing as npt

from ..data.labels import MASS_LABELS, THING_CLASSES, class_to_image_label, image_label_to_class

if TYPE_CHECKING:
    from detectron2.config import CfgNode

    from ..inference.analysis import ImageAnalysis

MAPPINGS = ("convex", "linear")
SELECTIONS = ("fraction", "fraction_per_class", "adaptive")
NUM_CLASSES = len(THING_CLASSES)  # benign, malignant


@dataclass(frozen=True)
class Candidate:
    """A weak image and its top detection: ``key`` (its file name), ``image_label`` 0/1/2, ``box`` (x0, y0, x1,
    y1) in original pixels, ``det_class`` 0 benign / 1 malignant, ``score`` in [0, 1]; box / class / score are
    None for an image without detections."""

    key: str
    image_label: int
    box: tuple = None
    det_class: int = None
    score: float = None

    @classmethod
    def from_analysis(cls, analysis: "ImageAnalysis") -> "Candidate":
        """From an :class:`~wssdl_d2.inference.analysis.ImageAnalysis`."""
        top = analysis.top_detection()
        if top is None:
            return cls(analysis.file_name, analysis.image_label)
        box, det_class, score = top
        return cls(analysis.file_name, analysis.image_label, tuple(float(v) for v in box), det_class, score)


def is_consistent(candidate: "Candidate") -> bool:
    """True when the top detection's class is the image label's (1 benign -> class 0, 2 malignant -> 1)."""
    return candidate.det_class is not None and candidate.image_label in MASS_LABELS \
        and candidate.det_class == image_label_to_class(candidate.image_label)


def rank(candidates: Iterable["Candidate"]) -> List["Candidate"]:
    """The consistent candidates, by decreasing score (ties: by key)."""
    return sorted((c for c in candidates if is_consistent(c)), key=lambda c: (-c.score, c.key))


def select_fraction(candidates: Iterable["Candidate"], fraction: float) -> List["Candidate"]:
    """The top ``round(fraction * #consistent)`` consistent candidates (half rounds up), ranked."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], not {fraction}")
    ranked = rank(candidates)
    return ranked[: int(math.floor(fraction * len(ranked) + 0.5))]


def select_fraction_per_class(candidates: Iterable["Candidate"], fraction: float) -> List["Candidate"]:
    """The top ``round(fraction * #consistent of class c)`` consistent candidates of each class c (half rounds
    up), ranked together; :func:`select_fraction` checks ``fraction``."""
    per_class = [select_fraction([x for x in candidates if x.det_class == c], fraction) for c in range(NUM_CLASSES)]
    return rank([x for chosen in per_class for x in chosen])


def learning_rates(candidates: Sequence["Candidate"], tau: float) -> Tuple[np.ndarray, float]:
    """Per detection class c, ``r_c`` = share of the candidates labelled c + 1 whose top detection is of class
    c with score >= ``tau`` (0 for a class without candidates), and ``u`` = share of all mass-labelled candidates
    without such a detection. Returns (r (NUM_CLASSES,), u)."""
    rates, hits, total = np.zeros(NUM_CLASSES), 0, 0
    for c in range(NUM_CLASSES):
        members = [x for x in candidates if x.image_label == class_to_image_label(c)]
        good = sum(is_consistent(x) and x.score >= tau for x in members)
        rates[c] = good / len(members) if members else 0.0
        hits, total = hits + good, total + len(members)
    return rates, (1.0 - hits / total) if total else 1.0


def adaptive_thresholds(rates: npt.ArrayLike, tau: float = 0.9, mapping: str = "convex", unlearnt: float = 0.0,
                        warmup: bool = True, min_thresh: float = 0.0) -> np.ndarray:
    """Per-class bars (NUM_CLASSES,) from learning rates ``rates`` (see the module docstring).

    Args:
        rates: (C,) learning effect per class in [0, 1]. unlearnt: the unlearnt share ``u`` (warm-up only).
        tau: the bar of the best-learnt class. mapping: "convex" or "linear". min_thresh: floor of every bar.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"WSSDL.SELFTRAIN.ADAPTIVE.MAPPING must be one of {MAPPINGS}, not {mapping!r}")
    if not 0.0 <= min_thresh <= tau <= 1.0:
        raise ValueError(f"need 0 <= ADAPTIVE.MIN_THRESH ({min_thresh}) <= ADAPTIVE.THRESH ({tau}) <= 1")
    rates = np.asarray(rates, dtype=np.float64)
    norm = max(rates.max(initial=0.0), unlearnt if warmup else 0.0)
    beta = rates / norm if norm > 0 else np.zeros_like(rates)
    mapped = beta / (2.0 - beta) if mapping == "convex" else beta
    return np.maximum(min_thresh, mapped * tau)


def select_adaptive(candidates: Sequence["Candidate"], tau: float = 0.9, mapping: str = "convex", warmup: bool = True,
                    min_thresh: float = 0.0) -> Tuple[List["Candidate"], np.ndarray, np.ndarray]:
    """Consistent candidates whose score reaches their class's adaptive bar, ranked. Returns (selected,
    thresholds (NUM_CLASSES,), rates (NUM_CLASSES,))."""
    rates, unlearnt = learning_rates(candidates, tau)
    thresholds = adaptive_thresholds(rates, tau, mapping, unlearnt, warmup, min_thresh)
    return [c for c in rank(candidates) if c.score >= thresholds[c.det_class]], thresholds, rates


def select_from_config(candidates: Sequence["Candidate"],
                       cfg: "CfgNode") -> Tuple[List["Candidate"], Dict[str, Any]]:
    """Selection by ``cfg.WSSDL.SELFTRAIN`` (SELECTION, FRACTION, ADAPTIVE.*). Returns (selected, info) where
    info says how: {"selection", "candidates", "consistent", "selected", "selected_per_class" (benign,
    malignant), and "fraction" or "thresholds" / "rates"}."""
    st = cfg.WSSDL.SELFTRAIN
    info = {"selection": st.SELECTION, "candidates": len(candidates), "consistent": len(rank(candidates))}
    if st.SELECTION in ("fraction", "fraction_per_class"):
        select = select_fraction if st.SELECTION == "fraction" else select_fraction_per_class
        selected = select(candidates, float(st.FRACTION))
        info["fraction"] = float(st.FRACTION)
    elif st.SELECTION == "adaptive":
        a = st.ADAPTIVE
        selected, thresholds, rates = select_adaptive(candidates, float(a.THRESH), a.MAPPING, bool(a.WARMUP),
                                                      float(a.MIN_THRESH))
        info.update(thresholds=[float(t) for t in thresholds], rates=[float(r) for r in rates])
    else:
        raise ValueError(f"WSSDL.SELFTRAIN.SELECTION must be one of {SELECTIONS}, not {st.SELECTION!r}")
    info["selected"] = len(selected)
    info["selected_per_class"] = [sum(c.det_class == k for c in selected) for k in range(NUM_CLASSES)]
    return selected, info
