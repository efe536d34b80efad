"""``WSSDLPredictor``: Detectron2's DefaultPredictor for one image, with detections as numpy arrays and the
image-level diagnosis.

The model is built from the config (any wssdl_d2 meta-architecture), its weights loaded from
``MODEL.WEIGHTS`` (a file, or any path Detectron2's PathManager resolves, ``wssdl_d2://`` included), and the
image resized by ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` as in evaluation.
"""
import os
from dataclasses import dataclass

import numpy as np
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor

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

    def above(self, threshold):
        """Indices of the detections whose score is >= ``threshold``."""
        return np.flatnonzero(self.scores >= threshold)


class WSSDLPredictor:
    """Runs a trained model on single images.

    Args:
        cfg: a wssdl_d2 config with ``MODEL.WEIGHTS`` set (it is not modified).
    Call it with an (H, W, 3) uint8 image in BGR order (:func:`wssdl_d2.data.image_io.read_image`'s default).
    """

    def __init__(self, cfg):
        weights = cfg.MODEL.WEIGHTS
        if not weights:
            raise ValueError("MODEL.WEIGHTS is empty: give the trained checkpoint, e.g. MODEL.WEIGHTS "
                             "output/.../model_final.pth")
        if "://" not in weights and not os.path.isfile(weights):
            raise FileNotFoundError(f"MODEL.WEIGHTS {weights}: checkpoint file not found")
        self.cfg = cfg.clone()
        self.tau = float(cfg.WSSDL.EVAL.SCORE_THRESH)
        self._predictor = DefaultPredictor(self.cfg)

    @property
    def model(self):
        return self._predictor.model

    def __call__(self, image_bgr):
        """Prediction of one (H, W, 3) uint8 BGR image."""
        image_bgr = np.asarray(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image_bgr.shape} {image_bgr.dtype}")
        check_input_size(*image_bgr.shape[:2], self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST)
        instances = self._predictor(image_bgr)["instances"]
        return prediction_from_instances(instances, self.tau)


def check_input_size(height, width, min_size, max_size):
    """Raise ValueError for an image the test-time resize (short side ``min_size``, long side <= ``max_size``)
    would shrink to less than one pixel across (an absurdly elongated image)."""
    new_h, new_w = T.ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)
    if min(height, width) < 1 or new_h < 1 or new_w < 1:
        raise ValueError(f"image of {width}x{height} pixels is too elongated for the model: resized to a short side "
                         f"of {min_size} and a long side of at most {max_size} it would be {new_w}x{new_h}")


def prediction_from_instances(instances, tau):
    """A :class:`Prediction` from Detectron2 ``Instances`` (pred_boxes, scores, pred_classes) in the original
    image's pixels; ``tau`` is the diagnosis threshold."""
    instances = instances.to("cpu")
    order = np.argsort(-instances.scores.numpy(), kind="stable")
    boxes = instances.pred_boxes.tensor.numpy()[order].astype(np.float32).reshape(-1, 4)
    scores = instances.scores.numpy()[order].astype(np.float32)
    classes = instances.pred_classes.numpy()[order].astype(np.int64)
    return Prediction(boxes, scores, classes, diagnose(scores, classes, tau), *instances.image_size)
