"""From the teacher's detections on a weak image to the pseudo boxes the student trains on.

Detections are Detectron2's inference outputs of one image: boxes ``(D, 4)`` (XYXY, pixels of the teacher's
view), scores ``(D,)`` in [0, 1] and detection classes ``(D,)`` (0 benign, 1 malignant); ``thresholds`` holds one
bar per class (:class:`~wssdl_d2.teacher.thresholds.ClassThresholds`).

**Label-aware** (``WSSDL.TEACHER.LABEL_FILTER`` True), by the image label:

- normal: no box, and the image is *trusted*: every proposal of it is a background sample;
- benign / malignant: the detections of the label's class (benign -> class 0, malignant -> class 1) whose score
  reaches that class's bar; with ``keep_best``, when none does, the highest-scoring detection of that class. An
  image left with no box is *not trusted* (its mass was not found: no pseudo loss, its proposals are not
  background samples). Detections of the other class are dropped.

**Label-free** (the Unbiased-Teacher-style ablation, ``LABEL_FILTER`` False): every detection whose score reaches
its class's bar, whatever the image label; every image is trusted (no box: all background).
"""
from dataclasses import dataclass

import torch

from ..data.labels import MASS_LABELS, NORMAL, class_to_image_label, image_label_to_class

__all__ = ["PseudoTarget", "label_aware_target", "label_free_target", "image_diagnosis"]


@dataclass
class PseudoTarget:
    """Pseudo boxes of one weak image: ``boxes`` (M, 4) XYXY in the teacher's view, ``classes`` (M,) long,
    ``scores`` (M,), ``trusted`` (False: the image gives no pseudo loss), ``kept_best`` (the box is there by the
    at-least-one rule)."""

    boxes: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    trusted: bool
    kept_best: bool = False


def _above(scores: torch.Tensor, classes: torch.Tensor, thresholds) -> torch.Tensor:
    bars = torch.as_tensor(thresholds, dtype=scores.dtype, device=scores.device)[classes.long()]
    return scores >= bars


def label_aware_target(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, image_label: int,
                       thresholds, keep_best: bool = True) -> PseudoTarget:
    """The label-aware pseudo boxes of one image (module docstring). ``image_label`` 0 / 1 / 2."""
    if int(image_label) == NORMAL:
        return PseudoTarget(boxes[:0], classes[:0].long(), scores[:0], True)
    if int(image_label) not in MASS_LABELS:
        raise ValueError(f"image_label must be 0 (normal), 1 (benign) or 2 (malignant), not {image_label!r}")
    target = image_label_to_class(int(image_label))
    own = classes.long() == target
    keep = own & _above(scores, classes, thresholds)
    if keep.any():
        return PseudoTarget(boxes[keep], classes[keep].long(), scores[keep], True)
    if keep_best and own.any():
        best = torch.where(own, scores, scores.new_full(scores.shape, -1.0)).argmax()
        return PseudoTarget(boxes[best:best + 1], classes[best:best + 1].long(), scores[best:best + 1], True,
                            kept_best=True)
    return PseudoTarget(boxes[:0], classes[:0].long(), scores[:0], False)


def label_free_target(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, thresholds) -> PseudoTarget:
    """Every detection above its class's bar; the image is always trusted (module docstring)."""
    keep = _above(scores, classes, thresholds)
    return PseudoTarget(boxes[keep], classes[keep].long(), scores[keep], True)


def image_diagnosis(scores: torch.Tensor, classes: torch.Tensor, thresholds) -> int:
    """The image label the teacher's detections imply: the class of the highest-scoring detection that reaches its
    class's bar (benign 1 / malignant 2), normal 0 when none does."""
    keep = _above(scores, classes, thresholds)
    if not keep.any():
        return NORMAL
    top = torch.where(keep, scores, scores.new_full(scores.shape, -1.0)).argmax()
    return class_to_image_label(int(classes[top]))
