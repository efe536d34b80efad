"""What happened on each test image: the per-image outcomes every CorLoc / FROC / diagnosis metric is built from.

Conventions (the data contract, :mod:`wssdl_d2.data.labels`): ``image_label`` 0 normal, 1 benign, 2 malignant;
detection classes 0 benign, 1 malignant; an image's *target class* is
:func:`~wssdl_d2.data.labels.image_label_to_class` of its label (none for a normal image). Boxes are XYXY in
absolute pixels.

Definitions (``tau`` = score threshold, ``iou_thresh`` = IoU threshold, a hit needs IoU strictly above it):

- ``hit_any`` (the authors' CorLoc): some detection of the target class with score >= tau has IoU > iou_thresh
  with a ground-truth box of the target class.
- ``hit_top1`` (the weakly-supervised-detection literature's CorLoc): the single highest-scoring detection of the
  target class, whatever its score (only the model's own test-time threshold applies), has IoU > iou_thresh with
  a ground-truth box of the target class.
- A *false positive* is a detection that has IoU <= iou_thresh with every ground-truth box of its own class (a
  detection of the wrong class on a mass counts as a false positive; several detections on one mass do not).
- ``malignancy_score``: the highest score among the image's malignant-class detections, 0 when there is none.
  The model's detections carry only their winning class's score, so this is a proxy for p(malignant): a box
  whose malignant probability is high but lower than its benign probability is not seen.
- ``abnormality_score``: the highest score among all of the image's detections, 0 when there is none.
- ``predicted_label``: 0 (normal) when no detection reaches tau, else the image label of the top-scoring one's
  class (:func:`~wssdl_d2.data.labels.class_to_image_label`).

Images with a benign / malignant label but no box (weak images) cannot be scored for localization: they are
left out of CorLoc and FROC sensitivity (``has_mass`` False) but kept for diagnosis and false positives.
"""
from typing import Dict, List, Tuple, Union

import numpy as np
import torch
from torchvision.ops import box_iou as _torch_box_iou

from ..data.labels import IMAGE_LABELS, MALIGNANT_CLASS, NORMAL, class_to_image_label, image_label_to_class

#: Per-image outcome columns, in the order they are saved.
OUTCOME_COLUMNS = (
    "image_id", "file_name", "image_label", "num_gt", "has_mass", "hit_any", "hit_top1", "top1_score", "top1_iou",
    "best_iou", "num_det", "num_det_at_tau", "fp_at_tau", "malignancy_score", "abnormality_score", "predicted_label",
)


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise IoU of XYXY boxes (absolute pixels, x0 <= x1, y0 <= y1): array-likes (A, 4), (B, 4) -> (A, B)
    float64 numpy array, 0 where the union is empty (two zero-area boxes). torchvision's ``box_iou``, in float64."""
    a = torch.as_tensor(np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4))
    return torch.nan_to_num(_torch_box_iou(a, b), nan=0.0).numpy()


def _as_arrays(gt_boxes, gt_classes, det_boxes, det_scores, det_classes):
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_classes = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    det_classes = np.asarray(det_classes, dtype=np.int64).reshape(-1)
    if len(gt_boxes) != len(gt_classes):
        raise ValueError(f"{len(gt_boxes)} ground-truth boxes but {len(gt_classes)} classes")
    if not len(det_boxes) == len(det_scores) == len(det_classes):
        raise ValueError(f"detections disagree: {len(det_boxes)} boxes, {len(det_scores)} scores, "
                         f"{len(det_classes)} classes")
    return gt_boxes, gt_classes, det_boxes, det_scores, det_classes


def match_detections(gt_boxes, gt_classes, det_boxes, det_classes,
                     iou_thresh: float) -> Tuple[np.ndarray, np.ndarray]:
    """Which detection overlaps which ground-truth box of its own class.

    Returns (D, K) bool: ``hits[d, k]`` when det d and gt k have the same class and IoU > iou_thresh, and the
    (D, K) IoU matrix itself.
    """
    iou = box_iou(det_boxes, gt_boxes)
    same_class = np.asarray(det_classes)[:, None] == np.asarray(gt_classes)[None, :]
    return (iou > iou_thresh) & same_class, iou


def image_outcome(image_label: int, gt_boxes, gt_classes, det_boxes, det_scores, det_classes, tau: float = 0.5,
                  iou_thresh: float = 0.5) -> Tuple[Dict[str, object], np.ndarray, np.ndarray]:
    """Outcome of one image (see the module docstring for the definitions).

    Args:
        image_label: 0 normal, 1 benign, 2 malignant.
        gt_boxes: (K, 4) XYXY; gt_classes: (K,) detection class of each box (0 benign, 1 malignant).
        det_boxes: (D, 4) XYXY; det_scores: (D,) in [0, 1]; det_classes: (D,).
    Returns:
        (outcome, lesion_scores, fp_scores): ``outcome`` a dict of the scalar columns of ``OUTCOME_COLUMNS``
        (without image_id / file_name); ``lesion_scores`` (K',) for each ground-truth box of the target class
        the highest score of a target-class detection hitting it (-inf if none; K' = 0 for normal images);
        ``fp_scores`` the scores of the image's false-positive detections. Those two feed the FROC curve.
    """
    if image_label not in IMAGE_LABELS:
        raise ValueError(f"image_label must be 0, 1 or 2, not {image_label!r}")
    gt_boxes, gt_classes, det_boxes, det_scores, det_classes = _as_arrays(
        gt_boxes, gt_classes, det_boxes, det_scores, det_classes)
    target = image_label_to_class(image_label) if image_label != NORMAL else -1  # -1: no target class
    hits, iou = match_detections(gt_boxes, gt_classes, det_boxes, det_classes, iou_thresh)
    is_fp = ~hits.any(axis=1)
    at_tau = det_scores >= tau

    target_gt = gt_classes == target if target >= 0 else np.zeros(len(gt_classes), bool)
    target_det = det_classes == target if target >= 0 else np.zeros(len(det_classes), bool)
    has_mass = bool(target_gt.any())
    hit_target = hits[:, target_gt].any(axis=1) & target_det  # (D,)
    iou_target = iou[:, target_gt].max(axis=1) if target_gt.any() else np.zeros(len(det_scores))

    if target_det.any():
        top = np.flatnonzero(target_det)[np.argmax(det_scores[target_det])]
        top1_score, top1_iou, hit_top1 = det_scores[top], iou_target[top], bool(hit_target[top])
    else:
        top1_score, top1_iou, hit_top1 = np.nan, np.nan, False
    counted = target_det & at_tau
    best_iou = iou_target[counted].max() if counted.any() and has_mass else np.nan

    lesion_hits = hits[:, target_gt] & target_det[:, None]  # (D, K')
    lesion_scores = np.where(lesion_hits, det_scores[:, None], -np.inf).max(axis=0, initial=-np.inf)

    malignant = det_classes == MALIGNANT_CLASS
    predicted = NORMAL
    if at_tau.any():
        predicted = class_to_image_label(int(det_classes[np.argmax(np.where(at_tau, det_scores, -np.inf))]))
    outcome = {
        "image_label": int(image_label), "num_gt": int(len(gt_boxes)), "has_mass": has_mass,
        "hit_any": bool(has_mass and (hit_target & at_tau).any()), "hit_top1": bool(has_mass and hit_top1),
        "top1_score": float(top1_score), "top1_iou": float(top1_iou) if has_mass else np.nan,
        "best_iou": float(best_iou), "num_det": int(len(det_scores)), "num_det_at_tau": int(at_tau.sum()),
        "fp_at_tau": int((is_fp & at_tau).sum()),
        "malignancy_score": float(det_scores[malignant].max()) if malignant.any() else 0.0,
        "abnormality_score": float(det_scores.max()) if len(det_scores) else 0.0,
        "predicted_label": predicted,
    }
    return outcome, lesion_scores, det_scores[is_fp]


class OutcomeTable:
    """Per-image outcomes of a whole test set as columns (numpy arrays of length N), plus the FROC inputs.

    Build it with :meth:`add` per image. ``columns[name]`` holds
    the column ``name`` of ``OUTCOME_COLUMNS``; ``lesion_scores`` (L,) and ``fp_scores`` (F,) pool the FROC
    inputs of all images.
    """

    def __init__(self):
        self._rows = []
        self._lesions, self._fps = [], []
        self._columns = None

    def add(self, image_id: Union[int, str], file_name: str, image_label: int, gt_boxes: np.ndarray,
            gt_classes: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray, det_classes: np.ndarray,
            tau: float = 0.5, iou_thresh: float = 0.5) -> Dict[str, object]:
        """Score one image (arguments as in :func:`image_outcome`) and append its row. Returns the row."""
        outcome, lesions, fps = image_outcome(image_label, gt_boxes, gt_classes, det_boxes, det_scores,
                                              det_classes, tau, iou_thresh)
        row = {"image_id": image_id, "file_name": file_name, **outcome}
        self._rows.append(row)
        self._lesions.append(lesions)
        self._fps.append(fps)
        self._columns = None
        return row

    def __len__(self):
        return len(self._rows)

    @property
    def rows(self) -> List[dict]:
        return list(self._rows)

    @property
    def columns(self) -> Dict[str, np.ndarray]:
        """Column name -> (N,) array, in ``OUTCOME_COLUMNS`` (flags bool, scores / IoUs float64)."""
        if self._columns is None:
            self._columns = {c: np.asarray([r[c] for r in self._rows]) for c in OUTCOME_COLUMNS}
            for c in ("has_mass", "hit_any", "hit_top1"):
                self._columns[c] = self._columns[c].astype(bool)
            for c in ("top1_score", "top1_iou", "best_iou", "malignancy_score", "abnormality_score"):
                self._columns[c] = self._columns[c].astype(np.float64)
        return self._columns

    @property
    def lesion_scores(self) -> np.ndarray:
        """(L,) pooled lesion scores of all images (-inf: lesion never hit)."""
        return np.concatenate([np.zeros(0)] + self._lesions)

    @property
    def fp_scores(self) -> np.ndarray:
        """(F,) pooled scores of all images' false-positive detections."""
        return np.concatenate([np.zeros(0)] + self._fps)
