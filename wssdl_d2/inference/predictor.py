"""``WSSDLPredictor``: a trained model on one image at a time (as Detectron2's DefaultPredictor), with detections
as numpy arrays and the image-level diagnosis.

The model is built from the config (any wssdl_d2 meta-architecture), its weights loaded weights-only from
``MODEL.WEIGHTS`` (a file, or any path Detectron2's PathManager resolves, ``wssdl_d2://`` included) by the project's
one loader (:func:`wssdl_d2.model_zoo.build_trained_model`; pickles only with ``WSSDL.ALLOW_PICKLE_WEIGHTS``), and
the image resized by ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` as in evaluation (:func:`preprocess`).
"""
import os
from dataclasses import dataclass
from typing import Any, Dict

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.structures import Instances

from ..model_zoo.safe_load import build_trained_model
from .diagnosis import Diagnosis, diagnose


@dataclass
class Prediction:
    """Detections of one image, in its original pixels: ``boxes`` (D, 4) XYXY float32, ``scores`` (D,)
    float32, ``classes`` (D,) int64 (0 benign, 1 malignant), sorted by decreasing score; its ``diagnosis``;
    ``height`` / ``width`` of the image."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    diagnosis: Diagnosis
    height: int
    width: int

    def above(self, threshold: float) -> np.ndarray:
        """Indices of the detections whose score is >= ``threshold``."""
        return np.flatnonzero(self.scores >= threshold)


class WSSDLPredictor:
    """Runs a trained model on single images.

    Args:
        cfg: a wssdl_d2 config with ``MODEL.WEIGHTS`` set (it is not modified).
        calibration: a :class:`wssdl_d2.evaluation.calibration.Calibration` of the malignancy score (or None); its
            probability is the diagnosis' ``p_malignant``.
    Call it with an (H, W, 3) uint8 image in BGR order (:func:`wssdl_d2.data.image_io.read_image`'s default).
    """

    def __init__(self, cfg, calibration=None):
        weights = cfg.MODEL.WEIGHTS
        if not weights:
            raise ValueError("MODEL.WEIGHTS is empty: give the trained checkpoint, e.g. MODEL.WEIGHTS "
                             "output/.../model_final.pth")
        if "://" not in weights and not os.path.isfile(weights):
            raise FileNotFoundError(f"MODEL.WEIGHTS {weights}: checkpoint file not found")
        self.cfg = cfg.clone()
        self.tau = float(cfg.WSSDL.EVAL.SCORE_THRESH)
        self.model = build_trained_model(self.cfg)
        self.calibration = calibration

    def __call__(self, image_bgr):
        """Prediction of one (H, W, 3) uint8 BGR image."""
        with torch.no_grad():
            instances = self.model([model_inputs(self.cfg, image_bgr)])[0]["instances"]
        prediction = prediction_from_instances(instances, self.tau)
        if self.calibration is not None:
            prediction.diagnosis.p_malignant = float(self.calibration(prediction.diagnosis.scores["malignant"]))
        return prediction


def preprocess(image_bgr: np.ndarray, min_size: int, max_size: int, input_format: str = "BGR") -> torch.Tensor:
    """The model's (3, h, w) float32 image tensor (0..255, channels in ``input_format`` order) for an (H, W, 3)
    uint8 BGR image: short side resized to ``min_size``, long side at most ``max_size`` (as in evaluation).
    ValueError for anything but an (H, W, 3) uint8 array, or an image too elongated to resize."""
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    check_input_size(*image.shape[:2], min_size, max_size)
    if input_format == "RGB":
        image = image[:, :, ::-1]
    resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(image).apply_image(image)
    return torch.as_tensor(np.ascontiguousarray(resized).astype("float32").transpose(2, 0, 1))


def model_inputs(cfg, image_bgr) -> Dict[str, Any]:
    """The model's input dict ({"image": (3, h, w) float32, "height": H, "width": W}) for an (H, W, 3) uint8 BGR
    image, preprocessed by :func:`preprocess` with ``cfg.INPUT``'s test sizes and format."""
    image = preprocess(image_bgr, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    height, width = np.asarray(image_bgr).shape[:2]
    return {"image": image, "height": height, "width": width}


def check_input_size(height: int, width: int, min_size: int, max_size: int) -> None:
    """Raise ValueError for an image the test-time resize (short side ``min_size``, long side <= ``max_size``)
    would shrink to less than one pixel across (an absurdly elongated image)."""
    new_h, new_w = T.ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)
    if min(height, width) < 1 or new_h < 1 or new_w < 1:
        raise ValueError(f"image of {width}x{height} pixels is too elongated for the model: resized to a short side "
                         f"of {min_size} and a long side of at most {max_size} it would be {new_w}x{new_h}")


def prediction_from_instances(instances: Instances, tau: float) -> Prediction:
    """A :class:`Prediction` from Detectron2 ``Instances`` (pred_boxes, scores, pred_classes) in the original
    image's pixels; ``tau`` is the diagnosis threshold."""
    instances = instances.to("cpu")
    order = np.argsort(-instances.scores.numpy(), kind="stable")
    boxes = instances.pred_boxes.tensor.numpy()[order].astype(np.float32).reshape(-1, 4)
    scores = instances.scores.numpy()[order].astype(np.float32)
    classes = instances.pred_classes.numpy()[order].astype(np.int64)
    return Prediction(boxes, scores, classes, diagnose(scores, classes, tau), *instances.image_size)
