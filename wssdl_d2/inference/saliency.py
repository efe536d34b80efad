"""Grad-CAM saliency for a detection: where in the image the model looks when it scores a box.

Grad-CAM (Selvaraju et al., ICCV 2017) on a detector: the target is the class logit (before the softmax) of
one box - the top detection (``target="top"``: the proposal row and class that produced it) or the mass of
interest of a labelled image (``target="moi"``: the MIL rule's proposal, the image label's class). Its gradient
with respect to a feature map A (C, h, w) weighs the channels, ``w_c = mean_xy dTarget/dA_c``, and the map is
``ReLU(sum_c w_c A_c)``, scaled to [0, 1] and brought to the original image's pixels (the padding of the input
batch cut away). The feature is a backbone output (``p3`` ... of the FPN) or one of the FPN's bottom-up
features (``res3`` ... / ``s8`` ...); the default is the deepest bottom-up feature (Grad-CAM's "last
convolutional layer"; every FPN level and so every box depends on it).
"""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from ..data.labels import CLASS_COLORS_BGR, MASS_LABELS, THING_CLASSES, image_label_to_class
from ..modeling.mass_of_interest import mil_bag, moi_rules_from_config, select_mass_of_interest
from .predictor import model_inputs
from .proposals import forward_with_proposals

TARGETS = ("top", "moi")


@dataclass
class Saliency:
    """``heatmap`` (H, W) float32 in [0, 1] in the original image's pixels; the explained ``box`` (4,) XYXY,
    ``det_class`` (0 benign, 1 malignant) and ``score`` (its softmax probability); ``feature`` used."""

    heatmap: np.ndarray
    box: np.ndarray
    det_class: int
    score: float
    feature: str


def grad_cam_map(activations: torch.Tensor, gradients: torch.Tensor) -> np.ndarray:
    """(h, w) float32 Grad-CAM map in [0, 1] from (C, h, w) activations and their gradients (all zero when
    nothing has a positive contribution)."""
    activations = torch.as_tensor(activations, dtype=torch.float32)
    gradients = torch.as_tensor(gradients, dtype=torch.float32)
    weights = gradients.mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * activations).sum(dim=0))
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).numpy().astype(np.float32)


def default_feature(backbone: torch.nn.Module) -> str:
    """The deepest (largest-stride) bottom-up feature of an FPN backbone, else the backbone's deepest output."""
    source = getattr(backbone, "bottom_up", backbone)
    shapes = source.output_shape()
    return max(shapes, key=lambda name: shapes[name].stride)


class _FeatureTap:
    """Keeps the chosen feature map (retaining its gradient) as the backbone computes it."""

    def __init__(self, backbone, name):
        self.name, self.value, self.handle = name, None, None
        bottom_up = getattr(backbone, "bottom_up", None)
        if name in backbone.output_shape():
            module = backbone
        elif bottom_up is not None and name in bottom_up.output_shape():
            module = bottom_up
        else:
            names = list(backbone.output_shape()) + (list(bottom_up.output_shape()) if bottom_up is not None else [])
            raise ValueError(f"feature {name!r} is not an output of the backbone; choose one of {names}")
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, module, inputs, outputs):
        self.value = outputs[self.name]
        self.value.retain_grad()

    def remove(self) -> None:
        self.handle.remove()


def saliency(predictor, image_bgr: np.ndarray, target: str = "top", image_label: Optional[int] = None,
             feature: Optional[str] = None) -> Saliency:
    """:class:`Saliency` of one (H, W, 3) uint8 BGR image for ``predictor``'s model (a WSSDLPredictor).

    ``target="top"``: the most confident detection (ValueError when there is none); ``"moi"``: the mass of
    interest for ``image_label`` (1 benign, 2 malignant).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    if target == "moi" and image_label not in MASS_LABELS:
        raise ValueError(f"target 'moi' needs image_label 1 (benign) or 2 (malignant), not {image_label!r}")
    model, cfg = predictor.model, predictor.cfg
    model.eval()
    feature = feature or default_feature(model.backbone)
    tap = _FeatureTap(model.backbone, feature)
    try:
        with torch.enable_grad():
            out = forward_with_proposals(model, model_inputs(cfg, image_bgr))
            if target == "top":
                if not len(out.instances):
                    raise ValueError("the model makes no detection on this image: nothing to explain "
                                     "(use --target moi with the image label)")
                top = int(out.instances.scores.argmax())
                row, det_class = int(out.kept[top]), int(out.instances.pred_classes[top])
            else:
                logits = mil_bag(out.class_logits, int(cfg.WSSDL.MIL.MAX_PROPOSALS))
                row = int(select_mass_of_interest(logits.detach(), moi_rules_from_config(cfg)[image_label],
                                                  cfg.WSSDL.MIL.SELECT_BY))
                det_class = image_label_to_class(image_label)
            model.zero_grad(set_to_none=True)
            out.class_logits[row, det_class].backward()
        activations, gradients = tap.value.detach()[0], tap.value.grad[0]
    finally:
        tap.remove()
        model.zero_grad(set_to_none=True)
    cam = grad_cam_map(activations.cpu(), gradients.cpu())
    padded_h, padded_w = out.padded_size
    (h, w), (height, width) = out.input_size, out.image_size
    cam = cv2.resize(cam, (padded_w, padded_h), interpolation=cv2.INTER_LINEAR)[:h, :w]
    heatmap = np.clip(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    score = float(out.class_logits[row].detach().softmax(dim=0)[det_class])
    if target == "top":  # detections are already in the original image's pixels
        box = out.instances.pred_boxes.tensor[top].detach().cpu().numpy().astype(np.float32)
    else:
        box = out.to_original(out.proposal_boxes[row:row + 1])[0]
    return Saliency(heatmap.astype(np.float32), box, det_class, score, feature)


def overlay(image_bgr: np.ndarray, result: Saliency, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8 BGR: the image with the heatmap (JET colours) blended in where it is high (opacity
    ``alpha * heatmap``; where the map is 0 the image is unchanged) and the explained box drawn."""
    image = np.asarray(image_bgr, dtype=np.uint8)
    colors = cv2.applyColorMap(np.uint8(np.round(result.heatmap * 255)), cv2.COLORMAP_JET)
    weight = (alpha * result.heatmap)[:, :, None]
    blended = np.uint8(np.round(image * (1.0 - weight) + colors * weight))
    x0, y0, x1, y1 = (int(round(v)) for v in result.box)
    color = CLASS_COLORS_BGR[result.det_class]
    cv2.rectangle(blended, (x0, y0), (x1, y1), color, 2)
    label = f"{THING_CLASSES[result.det_class]} {result.score:.2f} ({result.feature})"
    cv2.putText(blended, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return blended
