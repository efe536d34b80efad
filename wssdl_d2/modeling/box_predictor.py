"""How a detection is scored at inference: per class (Detectron2's way) or as a mass with a separate diagnosis.

Detectron2's Fast R-CNN head turns each proposal's K + 1 logits into softmax probabilities
``p = (p_benign, p_malignant, p_background)`` and emits one detection per foreground class with score ``p_c``.
A lesion the model is sure of but undecided about (``p_benign = p_malignant = 0.45``, background 0.10) then has
no detection scoring 0.5, though it is 90% sure a mass is there. On another hospital's scans this splitting is
common: the lesion is found (top-1 CorLoc high) but scored low (CorLoc at score 0.5 far lower).

``WSSDL.TEST.DETECTION_SCORE``:

- ``"class"`` (default): Detectron2's scores, unchanged.
- ``"mass"``: localization and diagnosis are separated. A proposal's score for its most likely foreground class
  (the diagnosis, argmax over benign / malignant) becomes its mass probability ``1 - p_background``; its other
  class keeps ``p_c`` (always below 0.5, so it never counts at the usual score threshold but still gives the
  image-level diagnosis a malignancy score). Boxes, NMS, the score threshold and the top-K are Detectron2's.

Only the model's detections change: the losses and the weights are the same in both modes, so a model trained in one
mode can be evaluated in the other (``--eval-only ... WSSDL.TEST.DETECTION_SCORE mass``). Training that uses the
model's own detections follows the mode too: the label-aware mean teacher's pseudo boxes.
"""
from typing import List

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

from ..config import DETECTION_SCORES


def mass_scores(probs: torch.Tensor) -> torch.Tensor:
    """``probs``: (R, K + 1) softmax probabilities, background last. Returns (R, K + 1): a copy in which each row's
    largest foreground probability is replaced by the row's mass probability ``1 - p_background`` (the sum of its
    foreground probabilities); the other entries are unchanged."""
    out = probs.clone()
    if len(probs) == 0:
        return out
    foreground = probs[:, :-1]
    best = foreground.argmax(dim=1)
    out[torch.arange(len(probs), device=probs.device), best] = foreground.sum(dim=1)
    return out


class WSSDLOutputLayers(FastRCNNOutputLayers):
    """FastRCNNOutputLayers whose inference scores follow ``detection_score`` ("class" or "mass", see the module
    docstring). Same parameters as Detectron2's (a checkpoint of one loads into the other)."""

    @configurable
    def __init__(self, input_shape, *, detection_score: str = "class", **kwargs):
        super().__init__(input_shape, **kwargs)
        if detection_score not in DETECTION_SCORES:
            raise ValueError(f"WSSDL.TEST.DETECTION_SCORE must be one of {DETECTION_SCORES}, not {detection_score!r}")
        self.detection_score = detection_score

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["detection_score"] = cfg.WSSDL.TEST.DETECTION_SCORE
        return ret

    def predict_probs(self, predictions, proposals) -> List[torch.Tensor]:
        probs = super().predict_probs(predictions, proposals)
        if self.detection_score == "mass" and not self.use_sigmoid_ce:
            probs = [mass_scores(p) for p in probs]
        return probs


@ROI_HEADS_REGISTRY.register()
class WSSDLROIHeads(StandardROIHeads):
    """StandardROIHeads with :class:`WSSDLOutputLayers` as its box predictor (``WSSDL.TEST.DETECTION_SCORE``);
    otherwise Detectron2's, parameter for parameter."""

    #: read by :func:`wssdl_d2.config.check_detection_score`: these heads honour WSSDL.TEST.DETECTION_SCORE
    scores_detections_per_config = True

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        # The same initial weights as Detectron2's predictor, and the random stream left as StandardROIHeads leaves
        # it: a seeded model starts exactly as it did with StandardROIHeads.
        with torch.random.fork_rng(devices=[]):
            predictor = WSSDLOutputLayers(cfg, ret["box_head"].output_shape)
        predictor.load_state_dict(ret["box_predictor"].state_dict())
        ret["box_predictor"] = predictor
        return ret
