"""Pick and draw example test images for a report: hits and misses of each class, normals with and without
false positives, with ground truth and the detections that count (score >= tau)."""
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..data.labels import BENIGN, IMAGE_LABEL_NAMES, MALIGNANT, NORMAL
from .plots import plot_examples

#: Example categories in the order they are filled, round-robin: (name, image label, outcome test).
CATEGORIES = (
    ("malignant, found", MALIGNANT, lambda img: img["hit_any"]),
    ("benign, found", BENIGN, lambda img: img["hit_any"]),
    ("malignant, missed", MALIGNANT, lambda img: not img["hit_any"]),
    ("benign, missed", BENIGN, lambda img: not img["hit_any"]),
    ("normal, false positive", NORMAL, lambda img: img["fp_at_tau"] > 0),
    ("normal, clean", NORMAL, lambda img: img["fp_at_tau"] == 0),
)


def select_examples(outcomes: Sequence[dict], count: int = 12) -> List[int]:
    """Indices of up to ``count`` images spread over :data:`CATEGORIES` (round-robin, dataset order within a
    category). ``outcomes``: per-image dicts with image_label, has_mass, hit_any, fp_at_tau."""
    queues = []
    for _, label, test in CATEGORIES:
        queues.append([i for i, o in enumerate(outcomes) if o["image_label"] == label
                       and (o["has_mass"] or label == NORMAL) and test(o)])
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def category_of(outcome: dict) -> str:
    """The name of the first category an image's outcome falls into ('' when none, e.g. a weak image)."""
    for name, label, test in CATEGORIES:
        if outcome["image_label"] == label and (outcome["has_mass"] or label == NORMAL) and test(outcome):
            return name
    return ""


def example_entry(detection_entry: dict, outcome: dict, tau: float, max_boxes: int = 3,
                  read_image: Optional[Callable[[str], np.ndarray]] = None) -> dict:
    """The drawing input of one image: its pixels, ground truth and its top detections with score >= tau.

    Args:
        detection_entry: one item of ``corloc_detections.json`` (file_name, gt_boxes, boxes, scores, classes).
        outcome: the image's per-image outcome (for the title).
        read_image: function path -> (H, W, 3) uint8 RGB (default Detectron2's ``read_image``).
    """
    if read_image is None:
        from detectron2.data.detection_utils import read_image as d2_read

        def read_image(path):
            return d2_read(path, format="RGB")

    path = detection_entry["file_name"]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: image of the evaluated dataset not found (moved since evaluation?)")
    scores = np.asarray(detection_entry["scores"], dtype=np.float64)
    keep = np.flatnonzero(scores >= tau)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
    boxes = np.asarray(detection_entry["boxes"], dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(detection_entry["classes"], dtype=np.int64)
    title = f"{os.path.basename(path)}\n{category_of(outcome) or IMAGE_LABEL_NAMES[outcome['image_label']]}"
    return {"image": read_image(path), "title": title, "gt_boxes": detection_entry["gt_boxes"],
            "boxes": boxes[keep], "scores": scores[keep], "classes": classes[keep]}


def write_examples_page(path: str, detections: Sequence[dict], outcomes: Sequence[dict], tau: float, count: int = 12,
                        indices: Optional[Sequence[int]] = None,
                        read_image: Optional[Callable[[str], np.ndarray]] = None) -> Tuple[str, List[int]]:
    """Draw ``count`` selected images (or the given ``indices``) into one PNG. Returns (path, indices)."""
    if len(detections) != len(outcomes):
        raise ValueError(f"{len(detections)} detection entries but {len(outcomes)} outcomes")
    indices = select_examples(outcomes, count) if indices is None else list(indices)
    entries = [example_entry(detections[i], outcomes[i], tau, read_image=read_image) for i in indices]
    return plot_examples(entries, path), indices
