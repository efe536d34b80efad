"""Per-class score bars of the teacher's pseudo boxes: fixed, or adapted to how well each class is learnt.

``fixed``: every class's bar is ``WSSDL.TEACHER.SCORE_THRESH``.

``adaptive``: the rule of self-training's adaptive selection (:mod:`wssdl_d2.pseudo.selection`, the FlexMatch /
BoostMIS idea), measured online. The teacher's top detection on each weak image with a mass label (benign or
malignant) is remembered, the last ``WINDOW`` of them; the learning effect of class c is the share of the
remembered images labelled c whose top detection is of class c with score >= tau (``SCORE_THRESH``), and
:func:`~wssdl_d2.pseudo.selection.adaptive_thresholds` turns these shares into bars
``max(MIN_THRESH, M(beta_c) * tau)``: a class the teacher detects worse gets a lower bar, the best-learnt one keeps
tau (once warm-up is over). Before any weak mass image was seen, every bar is the warm-up value (``MIN_THRESH``
with WARMUP, as nothing is learnt yet).

The window is part of the teacher's checkpoint (:meth:`ClassThresholds.state_dict`: tensors only).
"""
from collections import deque
from typing import Dict, Optional

import numpy as np
import torch

from ..data.labels import MASS_LABELS, THING_CLASSES
from ..pseudo.selection import MAPPINGS, Candidate, adaptive_thresholds, learning_rates

THRESHOLDS = ("adaptive", "fixed")
NUM_CLASSES = len(THING_CLASSES)

__all__ = ["THRESHOLDS", "ClassThresholds"]


class ClassThresholds:
    """Bars per detection class (0 benign, 1 malignant), in [0, 1].

    Args:
        mode: "adaptive" or "fixed". tau: the fixed bar, or the bar of a fully learnt class.
        mapping, warmup, min_thresh: as :func:`~wssdl_d2.pseudo.selection.adaptive_thresholds`.
        window: how many weak mass images the learning effect is measured over (adaptive).
    """

    def __init__(self, mode: str = "adaptive", tau: float = 0.7, mapping: str = "convex", warmup: bool = True,
                 min_thresh: float = 0.5, window: int = 200):
        if mode not in THRESHOLDS:
            raise ValueError(f"WSSDL.TEACHER.THRESHOLD must be one of {THRESHOLDS}, not {mode!r}")
        if mapping not in MAPPINGS:
            raise ValueError(f"WSSDL.TEACHER.ADAPTIVE.MAPPING must be one of {MAPPINGS}, not {mapping!r}")
        if not 0.0 <= min_thresh <= tau <= 1.0:
            raise ValueError(f"WSSDL.TEACHER: need 0 <= ADAPTIVE.MIN_THRESH ({min_thresh}) <= SCORE_THRESH ({tau}) "
                             "<= 1")
        if window < 1:
            raise ValueError(f"WSSDL.TEACHER.ADAPTIVE.WINDOW must be >= 1, not {window}")
        self.mode, self.tau, self.mapping, self.warmup = mode, float(tau), mapping, bool(warmup)
        self.min_thresh, self.window = float(min_thresh), int(window)
        self._seen = deque(maxlen=self.window)  # (image_label, det_class or -1, score)

    @classmethod
    def from_config(cls, cfg) -> "ClassThresholds":
        t = cfg.WSSDL.TEACHER
        return cls(t.THRESHOLD, float(t.SCORE_THRESH), t.ADAPTIVE.MAPPING, bool(t.ADAPTIVE.WARMUP),
                   float(t.ADAPTIVE.MIN_THRESH), int(t.ADAPTIVE.WINDOW))

    def observe(self, image_label: int, det_class: Optional[int], score: Optional[float]) -> None:
        """Remember the teacher's top detection (class, score; None for none) on a weak image with this image
        label; images labelled normal are not remembered (they measure no class)."""
        if int(image_label) in MASS_LABELS:
            self._seen.append((int(image_label), -1 if det_class is None else int(det_class),
                               0.0 if score is None else float(score)))

    def rates(self) -> np.ndarray:
        """Learning effect per class over the window, (NUM_CLASSES,) in [0, 1]; and see :meth:`thresholds`."""
        return learning_rates(self._candidates(), self.tau)[0]

    def thresholds(self) -> np.ndarray:
        """The bar of each class, (NUM_CLASSES,)."""
        if self.mode == "fixed":
            return np.full(NUM_CLASSES, self.tau)
        rates, unlearnt = learning_rates(self._candidates(), self.tau)
        return adaptive_thresholds(rates, self.tau, self.mapping, unlearnt, self.warmup, self.min_thresh)

    def _candidates(self):
        return [Candidate(str(k), y, (0.0, 0.0, 0.0, 0.0) if c >= 0 else None, c if c >= 0 else None,
                          s if c >= 0 else None) for k, (y, c, s) in enumerate(self._seen)]

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The window as tensors: ``image_labels`` (N,) long, ``det_classes`` (N,) long (-1: no detection),
        ``scores`` (N,) float64."""
        seen = list(self._seen)
        return {"image_labels": torch.tensor([s[0] for s in seen], dtype=torch.long),
                "det_classes": torch.tensor([s[1] for s in seen], dtype=torch.long),
                "scores": torch.tensor([s[2] for s in seen], dtype=torch.float64)}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self._seen.clear()
        for y, c, s in zip(state["image_labels"].tolist(), state["det_classes"].tolist(), state["scores"].tolist()):
            self._seen.append((int(y), int(c), float(s)))

    def __len__(self) -> int:
        return len(self._seen)
