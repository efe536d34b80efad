"""Draws a prediction with Detectron2's Visualizer: boxes with class and score, and the diagnosis as a title.

Boxes take the class colours of :data:`wssdl_d2.data.labels.CLASS_COLORS` (benign green, malignant red). Saliency
maps are drawn by :func:`wssdl_d2.inference.saliency.overlay`.
"""
from typing import Optional

import numpy as np
import torch
from detectron2.data.catalog import Metadata
from detectron2.structures import Boxes, Instances
from detectron2.utils.visualizer import ColorMode, Visualizer

from ..data.labels import CLASS_COLORS, IMAGE_LABEL_NAMES, NORMAL, THING_CLASSES, image_label_to_class
from .diagnosis import stated_diagnosis

_METADATA = Metadata(name="wssdl_d2", thing_classes=list(THING_CLASSES), thing_colors=list(CLASS_COLORS))


def draw_prediction(image_rgb: np.ndarray, prediction, threshold: float = 0.5,
                    title: Optional[str] = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB drawing of ``prediction`` (a :class:`.Prediction`) on ``image_rgb``.

    Draws the detections with score >= ``threshold``; ``title`` (default: the one stated diagnosis and its basis,
    :func:`.diagnosis.stated_diagnosis`) is written in the top-left corner.
    """
    keep = prediction.above(threshold)
    instances = Instances((prediction.height, prediction.width))
    instances.pred_boxes = Boxes(torch.as_tensor(prediction.boxes[keep]).reshape(-1, 4))
    instances.scores = torch.as_tensor(prediction.scores[keep]).reshape(-1)
    instances.pred_classes = torch.as_tensor(prediction.classes[keep]).reshape(-1)
    visualizer = Visualizer(np.asarray(image_rgb), metadata=_METADATA, instance_mode=ColorMode.SEGMENTATION)
    output = visualizer.draw_instance_predictions(instances, jittering=False)
    name, basis = stated_diagnosis(prediction.diagnosis)
    if title is None:
        title = f"diagnosis: {name}\n" + basis.replace("; ", "\n")
    label = IMAGE_LABEL_NAMES.index(name)
    color = tuple(c / 255.0 for c in CLASS_COLORS[image_label_to_class(label)]) if label != NORMAL else "w"
    visualizer.draw_text(title, (4, 4), horizontal_alignment="left", color=color)
    return output.get_image()
