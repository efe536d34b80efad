"""The image-level (multiple-instance) loss of weakly labelled images, and its class weights.

For a weak image I with image label y and proposals x_1..x_R, the mass of interest x_MoI is chosen by a rule
(:mod:`.mass_of_interest`) and ``L_ws(I) = -log p_t(x_MoI)`` where t is the detection class of y: benign ->
class 0, malignant -> class 1, normal -> background (class K). Over a batch of weak images,
``L_ws = mean_I w_y(I) * L_ws(I)`` (weights as in the authors' code: a weighted mean over the images).
"""
from collections import Counter
from typing import Callable, List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F

from ..data.labels import IMAGE_LABELS, NORMAL, image_label_to_class
from .mass_of_interest import select_mass_of_interest

CLASS_WEIGHTINGS = ("none", "inverse_frequency", "explicit")

__all__ = ["CLASS_WEIGHTINGS", "MILLoss", "class_weights_from_config", "image_label_to_class",
           "inverse_frequency_weights", "mil_cross_entropy", "mil_loss"]


def mil_cross_entropy(moi_scores: torch.Tensor, image_labels: Sequence[int],
                      class_weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Weighted mean cross-entropy (a scalar tensor, nats) between the MoI rows ``(N, K + 1)`` (class logits,
    background last) and the targets (:func:`~wssdl_d2.data.labels.image_label_to_class`) of the N image labels
    (0, 1 or 2); ``class_weights``: None or 3 floats indexed by image label."""
    num_classes = moi_scores.shape[1] - 1
    device = moi_scores.device
    targets = torch.tensor([image_label_to_class(y, num_classes) for y in image_labels], device=device)
    per_image = F.cross_entropy(moi_scores, targets, reduction="none")  # (N,)
    if class_weights is not None:
        weights = torch.as_tensor(class_weights, dtype=per_image.dtype, device=device)[
            torch.as_tensor(image_labels, device=device)]
        per_image = per_image * weights
    return per_image.mean()


class MILLoss(NamedTuple):
    """What :func:`mil_loss` returns: ``loss`` (scalar tensor), ``moi`` (N 0-dim long tensors: the MoI's row in
    each bag) and ``moi_scores`` ``(N, K + 1)`` (the MoI rows the loss was computed on)."""

    loss: torch.Tensor
    moi: List[torch.Tensor]
    moi_scores: torch.Tensor


def mil_loss(scores_per_image: Sequence[torch.Tensor], image_labels: Sequence[int], rules: Sequence[str],
             select_by: str = "prob", class_weights: Optional[Sequence[float]] = None,
             rescore: Optional[Callable[[List[torch.Tensor]], torch.Tensor]] = None) -> MILLoss:
    """Weighted mean image-level cross-entropy of the MoIs, and the MoI indices.

    Args:
        scores_per_image: list of N tensors ``(R_i, K + 1)``: class logits of every proposal of weak image i
            (background last), R_i >= 1.
        image_labels: list of N ints in {0, 1, 2}.
        rules: list of N MoI rule names (one per image, chosen from its image label).
        select_by: ``"prob"`` or ``"logit"``.
        class_weights: None or a sequence of 3 floats indexed by image label (normal, benign, malignant).
        rescore: None, or a function (the N MoI indices) -> ``(N, K + 1)`` logits of the MoI proposals recomputed
            with autograd (then ``scores_per_image`` may be computed without it: only the MoI rows get a
            gradient). None: the MoI rows of ``scores_per_image`` are used.

    Returns:
        :class:`MILLoss` ``(loss, moi, moi_scores)``. N must be >= 1.
    """
    if not (len(scores_per_image) == len(image_labels) == len(rules)):
        raise ValueError("mil_loss: scores_per_image, image_labels and rules must have the same length")
    if not scores_per_image:
        raise ValueError("mil_loss: no weak image")
    moi = [select_mass_of_interest(s, rule, select_by) for s, rule in zip(scores_per_image, rules)]
    if rescore is None:
        rows = torch.stack([s[i] for s, i in zip(scores_per_image, moi)])  # (N, K + 1)
    else:
        rows = rescore(moi)
    return MILLoss(mil_cross_entropy(rows, image_labels, class_weights), moi, rows)


def inverse_frequency_weights(image_labels: Sequence[int], use_normal: bool = True) -> List[float]:
    """Class weights ``[w_normal, w_benign, w_malignant]`` proportional to 1 / count of each image label among
    the weak images, normalised to sum to 1 over the labels present (the authors' code: benign r, malignant
    1 - r, with r the malignant fraction). Labels absent (or normal when ``use_normal`` is False) get 0."""
    counts = Counter(int(y) for y in image_labels if use_normal or int(y) != NORMAL)
    if not counts:
        raise ValueError("inverse_frequency_weights: no weak image label to count")
    inverse = [1.0 / counts[y] if counts.get(y) else 0.0 for y in IMAGE_LABELS]
    total = sum(inverse)
    return [w / total for w in inverse]


def class_weights_from_config(cfg, weak_image_labels: Optional[Sequence[int]] = None) -> Optional[List[float]]:
    """The weak loss's class weights per ``cfg.WSSDL.MIL.CLASS_WEIGHTING``: None (``none``),
    ``CLASS_WEIGHTS`` (``explicit``) or :func:`inverse_frequency_weights` of ``weak_image_labels``."""
    mode = str(cfg.WSSDL.MIL.CLASS_WEIGHTING).lower()
    if mode == "none":
        return None
    if mode == "explicit":
        weights = [float(w) for w in cfg.WSSDL.MIL.CLASS_WEIGHTS]
        if len(weights) != 3 or min(weights) < 0:
            raise ValueError(f"WSSDL.MIL.CLASS_WEIGHTS must be 3 non-negative numbers (normal, benign, "
                             f"malignant), not {list(cfg.WSSDL.MIL.CLASS_WEIGHTS)}")
        return weights
    if mode == "inverse_frequency":
        if weak_image_labels is None:
            raise ValueError("WSSDL.MIL.CLASS_WEIGHTING inverse_frequency needs the weak images' labels")
        return inverse_frequency_weights(weak_image_labels, use_normal=cfg.WSSDL.MIL.USE_NORMAL)
    raise ValueError(f"WSSDL.MIL.CLASS_WEIGHTING must be one of {CLASS_WEIGHTINGS}, "
                     f"not {cfg.WSSDL.MIL.CLASS_WEIGHTING!r}")
