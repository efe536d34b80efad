"""Where a detector's boxes land and why it misses: per-image properties of the top detection and of the detections
at score >= tau, relative to the image border, the scan's field of view, burnt-in overlays (calipers, text;
:mod:`wssdl_d2.data.overlays`) and the ground truth, plus the class the detector predicts against the true label.
It answers "what does a model (e.g. the MIL term's weak images) teach": to look at annotation marks, at the frame
edge, or a class prior.

Conventions as in :mod:`.outcomes`: boxes XYXY in absolute pixels of the original image, ``image_label`` 0 normal,
1 benign, 2 malignant, detection classes 0 benign, 1 malignant. The *top detection* is the image's highest-scoring
detection of any class, whatever its score. A box is *at the border* when one of its edges lies within
``border_px`` pixels of the image frame, *at the field-of-view edge* when within ``border_px`` of the scan's field
of view box; it *covers an overlay* when at least ``min_overlay_px`` overlay pixels lie inside it. A mass image
*has calipers* (a proxy: overlay marks placed on or beside the lesion) when at least ``min_overlay_px`` overlay
pixels lie inside a ground-truth box grown by ``near_px`` on each side, not counting overlay pixels within
``border_px`` of the frame (the corner markers and edge text of many scanners).

A mass image the authors' CorLoc misses (``hit_any`` False, :mod:`.outcomes`) gets one ``miss_reason``:
``wrong_class`` (a detection at score >= tau of the other class has IoU > iou_thresh with the mass),
``low_score`` (else: a detection of the right class has IoU > iou_thresh but scores below tau), or
``elsewhere`` (no detection of either class covers the mass). Hits get ``hit``; normal images ``""``.
"""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy.stats import fisher_exact

from ..data.labels import IMAGE_LABEL_NAMES, MALIGNANT_CLASS, NORMAL, image_label_to_class
from .bootstrap import mcnemar_exact, paired_bootstrap, resample_counts, safe_divide
from .outcomes import box_iou, image_outcome
from .stratified import stratified_bootstrap_indices

#: Per-image diagnostic columns, in the order they are saved.
DIAGNOSTIC_COLUMNS = (
    "fold", "file_name", "image_label", "has_mass", "height", "width", "overlay_px", "has_overlay", "has_calipers",
    "mass_area_frac", "mass_at_border", "hit_any", "hit_top1", "predicted_label", "miss_reason",
    "top_class", "top_score", "top_iou", "top_area_frac", "top_area_to_gt", "top_aspect", "top_border_px",
    "top_fov_px", "top_at_border", "top_at_fov_edge", "top_overlay_px", "top_covers_overlay",
    "num_at_tau", "fp_at_tau", "fp_at_border", "fp_covers_overlay",
)


def box_mask_counts(boxes, mask: np.ndarray) -> np.ndarray:
    """Mask pixels inside each box: boxes (D, 4) XYXY absolute pixels (clipped to the image, rounded outwards),
    mask (H, W) bool -> (D,) int64 counts, from one summed-area table (OpenCV's ``integral``)."""
    mask = np.asarray(mask, dtype=np.uint8)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = mask.shape
    table = cv2.integral(mask)  # (H + 1, W + 1)
    x0 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(int)
    y0 = np.clip(np.floor(boxes[:, 1]), 0, height).astype(int)
    x1 = np.clip(np.ceil(boxes[:, 2]), 0, width).astype(int)
    y1 = np.clip(np.ceil(boxes[:, 3]), 0, height).astype(int)
    x1, y1 = np.maximum(x1, x0), np.maximum(y1, y0)
    return (table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]).astype(np.int64)


def border_distance(boxes, frame: Sequence[float]) -> np.ndarray:
    """Smallest gap (pixels, >= 0) between each box's edges and the matching edges of ``frame`` (XYXY, e.g.
    ``(0, 0, W, H)`` or a field-of-view box): (D, 4) -> (D,) float64. 0 for a box touching or crossing it."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fx0, fy0, fx1, fy1 = (float(v) for v in frame)
    gaps = np.stack([boxes[:, 0] - fx0, boxes[:, 1] - fy0, fx1 - boxes[:, 2], fy1 - boxes[:, 3]], axis=1)
    return np.clip(gaps, 0.0, None).min(axis=1, initial=np.inf) if len(boxes) else np.zeros(0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def grow_boxes(boxes, pixels: float) -> np.ndarray:
    """Boxes (D, 4) XYXY grown by ``pixels`` on every side -> (D, 4) float64."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) + np.array([-pixels, -pixels, pixels, pixels])


def miss_reason(image_label: int, gt_boxes, gt_classes, det_boxes, det_scores, det_classes, hit_any: bool,
                tau: float = 0.5, iou_thresh: float = 0.5) -> str:
    """Why the authors' CorLoc missed a mass image (see the module docstring): "hit", "wrong_class",
    "low_score" or "elsewhere"; "" for a normal image or one without a box of its target class."""
    if image_label == NORMAL:
        return ""
    target = image_label_to_class(image_label)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    target_gt = gt_boxes[np.asarray(gt_classes, dtype=np.int64).reshape(-1) == target]
    if not len(target_gt):
        return ""
    if hit_any:
        return "hit"
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    det_classes = np.asarray(det_classes, dtype=np.int64).reshape(-1)
    covers = box_iou(det_boxes, target_gt).max(axis=1, initial=0.0) > iou_thresh if len(det_scores) else \
        np.zeros(0, bool)
    if (covers & (det_classes != target) & (det_scores >= tau)).any():
        return "wrong_class"
    if (covers & (det_classes == target)).any():
        return "low_score"
    return "elsewhere"


def image_diagnostics(entry: Mapping[str, Any], overlay: np.ndarray, fov_box: Sequence[float], tau: float = 0.5,
                      iou_thresh: float = 0.5, border_px: float = 8.0, min_overlay_px: int = 10,
                      near_px: float = 15.0, saved: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The diagnostic row of one image (``DIAGNOSTIC_COLUMNS`` less ``fold``).

    Args:
        entry: one item of ``corloc_detections.json``: file_name, image_label, gt_boxes (K, 4), gt_classes (K,),
            boxes (D, 4), scores (D,), classes (D,).
        overlay: (H, W) bool overlay mask of the image (:func:`wssdl_d2.data.overlays.overlay_mask`); its shape
            gives the image size.
        fov_box: XYXY field-of-view box (:func:`wssdl_d2.data.overlays.field_of_view_box`).
        tau, iou_thresh: as in :mod:`.outcomes`; border_px, min_overlay_px, near_px: see the module docstring.
        saved: the image's row of ``corloc_per_image.csv``, if any: its ``hit_any``, ``hit_top1`` and
            ``predicted_label`` replace the ones recomputed here (``corloc_detections.json`` rounds scores to
            4 decimals, so a score just under tau can read as tau).
    Returns:
        dict: areas as fractions of the image (``*_area_frac``) or of the best-overlapping ground-truth box
        (``top_area_to_gt``), ``top_aspect`` width / height, distances in pixels, IoUs class-agnostic (the top
        box against any ground-truth box), NaN / -1 (``top_class``) where undefined.
    """
    height, width = overlay.shape
    label = int(entry["image_label"])
    gt_boxes = np.asarray(entry.get("gt_boxes", []), dtype=np.float64).reshape(-1, 4)
    gt_classes = np.asarray(entry.get("gt_classes", []), dtype=np.int64).reshape(-1)
    boxes = np.asarray(entry.get("boxes", []), dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(entry.get("scores", []), dtype=np.float64).reshape(-1)
    classes = np.asarray(entry.get("classes", []), dtype=np.int64).reshape(-1)
    outcome, _, _ = image_outcome(label, gt_boxes, gt_classes, boxes, scores, classes, tau, iou_thresh)
    if saved is not None:
        outcome.update(hit_any=bool(saved["hit_any"]), hit_top1=bool(saved["hit_top1"]),
                       predicted_label=int(saved["predicted_label"]))
    frame = (0.0, 0.0, float(width), float(height))
    image_area = float(width * height)
    overlay_px = int(overlay.sum())
    inner = overlay.copy()  # calipers: leave out the marks in the frame's margin (corner markers, edge text)
    margin = int(np.ceil(border_px))
    if margin > 0:
        inner[:margin], inner[-margin:], inner[:, :margin], inner[:, -margin:] = False, False, False, False
    calipers_px = int(box_mask_counts(grow_boxes(gt_boxes, near_px), inner).max(initial=0)) if len(gt_boxes) else 0
    row = {
        "file_name": entry["file_name"], "image_label": label, "has_mass": outcome["has_mass"],
        "height": int(height), "width": int(width), "overlay_px": overlay_px,
        "has_overlay": overlay_px >= min_overlay_px,
        "has_calipers": bool(outcome["has_mass"] and calipers_px >= min_overlay_px),
        "mass_area_frac": float(_area(gt_boxes).max() / image_area) if len(gt_boxes) else np.nan,
        "mass_at_border": bool(len(gt_boxes) and border_distance(gt_boxes, frame).min() <= border_px),
        "hit_any": outcome["hit_any"], "hit_top1": outcome["hit_top1"],
        "predicted_label": outcome["predicted_label"],
        "miss_reason": miss_reason(label, gt_boxes, gt_classes, boxes, scores, classes, outcome["hit_any"], tau,
                                   iou_thresh),
    }
    top = {"top_class": -1, "top_score": np.nan, "top_iou": np.nan, "top_area_frac": np.nan,
           "top_area_to_gt": np.nan, "top_aspect": np.nan, "top_border_px": np.nan, "top_fov_px": np.nan,
           "top_at_border": False, "top_at_fov_edge": False, "top_overlay_px": 0, "top_covers_overlay": False}
    if len(scores):
        k = int(np.argmax(scores))
        box = boxes[k:k + 1]
        w, h = box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]
        top.update(top_class=int(classes[k]), top_score=float(scores[k]), top_area_frac=float(_area(box)[0] / image_area),
                   top_aspect=float(w / h) if h > 0 else np.nan,
                   top_border_px=float(border_distance(box, frame)[0]),
                   top_fov_px=float(border_distance(box, fov_box)[0]),
                   top_overlay_px=int(box_mask_counts(box, overlay)[0]))
        top["top_at_border"] = top["top_border_px"] <= border_px
        top["top_at_fov_edge"] = top["top_fov_px"] <= border_px
        top["top_covers_overlay"] = top["top_overlay_px"] >= min_overlay_px
        if len(gt_boxes):
            iou = box_iou(box, gt_boxes)[0]
            best = int(np.argmax(iou))
            top["top_iou"] = float(iou[best])
            gt_area = _area(gt_boxes[best:best + 1])[0]
            top["top_area_to_gt"] = float(_area(box)[0] / gt_area) if gt_area > 0 else np.nan
    row.update(top)
    at_tau = scores >= tau
    if len(gt_boxes) and len(scores):
        same_class = classes[:, None] == gt_classes[None, :]
        is_fp = ~((box_iou(boxes, gt_boxes) > iou_thresh) & same_class).any(axis=1)
    else:
        is_fp = np.ones(len(scores), bool)
    fp = is_fp & at_tau
    fp_boxes = boxes[fp]
    row.update(num_at_tau=int(at_tau.sum()), fp_at_tau=int(fp.sum()),
               fp_at_border=int((border_distance(fp_boxes, frame) <= border_px).sum()),
               fp_covers_overlay=int((box_mask_counts(fp_boxes, overlay) >= min_overlay_px).sum()))
    return row


def as_columns(rows: Sequence[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    """Rows of :func:`image_diagnostics` (plus ``fold``) -> column name -> (N,) array."""
    return {c: np.asarray([r[c] for r in rows]) for c in DIAGNOSTIC_COLUMNS if rows and c in rows[0]}


def class_confusion(true_labels, predicted_labels, num_labels: int = 3) -> np.ndarray:
    """(num_labels, num_labels) int64 counts: row = true image label, column = predicted label, (N,), (N,) ints."""
    true_labels = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64).reshape(-1)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_labels)} predictions")
    if len(true_labels) and (min(true_labels.min(), predicted_labels.min()) < 0
                             or max(true_labels.max(), predicted_labels.max()) >= num_labels):
        raise ValueError(f"labels must lie in 0..{num_labels - 1}")
    return np.bincount(true_labels * num_labels + predicted_labels,
                       minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def _count(flags, among) -> Tuple[int, int]:
    flags, among = np.asarray(flags, bool), np.asarray(among, bool)
    return int((flags & among).sum()), int(among.sum())


def summarize(columns: Mapping[str, np.ndarray]) -> "OrderedDict[str, Any]":
    """What one run's diagnostic rows say, as counts with their denominators ((k, n) pairs) or plain values.

    Keys: ``images``, ``mass_images``; ``CorLoc`` / ``CorLoc_top1`` (k, n); ``has_overlay`` (all images),
    ``has_calipers`` (mass images), ``CorLoc_with_calipers`` / ``CorLoc_without_calipers``; ``top_at_border`` / ``top_at_fov_edge`` / ``top_covers_overlay`` among images
    with a detection, split by ``_mass`` and ``_normal`` images; ``top_on_mass`` (top box IoU > 0.5 with a mass,
    mass images); ``fp`` totals (``fp_at_tau``, ``fp_at_border``, ``fp_covers_overlay``: (k, total FPs));
    ``has_overlay_mass`` / ``has_overlay_normal``; ``normal_with_detection_at_tau`` (k, normal images) and
    its ``_overlay`` / ``_clean`` split (normal images with / without an overlay); ``miss_<reason>`` (k, mass images);
    ``top_malignant`` (top box malignant, mass images with a detection) against ``true_malignant`` (k, mass
    images); ``mean_top_score_<label>``; ``median_top_area_to_gt`` (mass images); ``confusion`` (3 x 3 list,
    :func:`class_confusion` of image label vs predicted label).
    """
    c = columns
    n = len(c["file_name"])
    everything = np.ones(n, bool)
    mass = c["has_mass"].astype(bool)
    label = c["image_label"].astype(int)
    detected = c["top_class"].astype(int) >= 0
    normal = label == NORMAL
    out = OrderedDict(images=n, mass_images=int(mass.sum()))
    out["CorLoc"] = _count(c["hit_any"], mass)
    out["CorLoc_top1"] = _count(c["hit_top1"], mass)
    out["has_overlay"] = _count(c["has_overlay"], everything)
    overlay = c["has_overlay"].astype(bool)
    out["has_overlay_mass"] = _count(overlay, mass)
    out["has_overlay_normal"] = _count(overlay, normal)
    out["has_calipers"] = _count(c["has_calipers"], mass)
    calipers = c["has_calipers"].astype(bool)
    out["CorLoc_with_calipers"] = _count(c["hit_any"], mass & calipers)
    out["CorLoc_without_calipers"] = _count(c["hit_any"], mass & ~calipers)
    for flag in ("top_at_border", "top_at_fov_edge", "top_covers_overlay"):
        out[flag + "_mass"] = _count(c[flag], detected & mass)
        out[flag + "_normal"] = _count(c[flag], detected & normal)
    out["top_on_mass"] = _count(np.nan_to_num(c["top_iou"].astype(float)) > 0.5, mass)
    total_fp = int(c["fp_at_tau"].sum())
    out["fp_at_tau"] = (total_fp, n)
    out["fp_at_border"] = (int(c["fp_at_border"].sum()), total_fp)
    out["fp_covers_overlay"] = (int(c["fp_covers_overlay"].sum()), total_fp)
    out["normal_with_detection_at_tau"] = _count(c["num_at_tau"] > 0, normal)
    out["normal_with_detection_at_tau_overlay"] = _count(c["num_at_tau"] > 0, normal & overlay)
    out["normal_with_detection_at_tau_clean"] = _count(c["num_at_tau"] > 0, normal & ~overlay)
    for reason in ("wrong_class", "low_score", "elsewhere"):
        out["miss_" + reason] = _count(c["miss_reason"] == reason, mass)
    out["top_malignant"] = _count(c["top_class"] == MALIGNANT_CLASS, detected & mass)
    out["true_malignant"] = _count(label == 2, mass)
    for value, name in enumerate(IMAGE_LABEL_NAMES):
        scores = c["top_score"].astype(float)[(label == value) & detected]
        out["mean_top_score_" + name] = float(scores.mean()) if len(scores) else float("nan")
    ratio = c["top_area_to_gt"].astype(float)[mass & detected]
    out["median_top_area_to_gt"] = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else float("nan")
    out["confusion"] = class_confusion(label, c["predicted_label"]).tolist()
    return out


def align(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray], name_a: str = "A",
          name_b: str = "B") -> Dict[str, np.ndarray]:
    """Run B's columns reordered to run A's rows, matched on (fold, file_name). Raises ValueError naming an
    image one of them lacks."""
    keys_a = list(zip(columns_a["fold"], columns_a["file_name"]))
    position = {k: i for i, k in enumerate(zip(columns_b["fold"], columns_b["file_name"]))}
    missing = [k for k in keys_a if k not in position]
    if missing or len(position) != len(keys_a):
        example = missing[0] if missing else "(B has more images)"
        raise ValueError(f"{name_a} and {name_b} hold different images (fold, file), e.g. {example}")
    order = np.asarray([position[k] for k in keys_a], dtype=np.int64)
    return {k: np.asarray(v)[order] for k, v in columns_b.items()}


def discordant_profile(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray],
                       features: Mapping[str, np.ndarray], hit: str = "hit_any") -> "OrderedDict[str, Dict]":
    """What distinguishes the mass images only A finds from those only B finds (McNemar's discordant pairs).

    Args:
        columns_a, columns_b: aligned diagnostic columns (:func:`align`).
        features: name -> (N,) bool per image (e.g. has_calipers, malignant, small mass).
        hit: the per-image success column.
    Returns:
        feature -> {"a_only": (k, n), "b_only": (k, n), "p_fisher": two-sided Fisher exact p that the feature is
        as common in both groups}; plus "_counts": {"a_only", "b_only"} and McNemar's p over all mass images.
    """
    mass = columns_a["has_mass"].astype(bool)
    a_hit, b_hit = columns_a[hit].astype(bool), columns_b[hit].astype(bool)
    a_only, b_only = mass & a_hit & ~b_hit, mass & ~a_hit & b_hit
    out = OrderedDict()
    for name, flags in features.items():
        flags = np.asarray(flags, bool)
        ka, na = _count(flags, a_only)
        kb, nb = _count(flags, b_only)
        p = fisher_exact([[ka, na - ka], [kb, nb - kb]])[1] if na and nb else float("nan")
        out[name] = {"a_only": (ka, na), "b_only": (kb, nb), "p_fisher": float(p)}
    test = mcnemar_exact(a_hit[mass], b_hit[mass])
    out["_counts"] = {"a_only": test["a_only"], "b_only": test["b_only"], "p_mcnemar": test["p_value"]}
    return out


def subgroup_differences(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray],
                         groups: Mapping[str, np.ndarray], hit: str = "hit_any", num_samples: int = 2000,
                         seed: int = 0, level: float = 0.95) -> "OrderedDict[str, Dict]":
    """Paired A - B success rate (percent) within subgroups of the mass images, e.g. with / without calipers.

    Args:
        columns_a, columns_b: aligned diagnostic columns (:func:`align`); ``fold`` is the bootstrap stratum.
        groups: name -> (N,) bool membership (restricted to mass images here).
    Returns:
        name -> {"n", "a", "b", "diff", "ci": (lo, hi) of the stratified paired bootstrap, "p_bootstrap",
        "mcnemar": {a_only, b_only, p_value}}; the same index matrix serves every group.
    """
    mass = columns_a["has_mass"].astype(bool)
    a_hit, b_hit = columns_a[hit].astype(float), columns_b[hit].astype(float)
    indices = stratified_bootstrap_indices(np.asarray(columns_a["fold"]), num_samples, seed)
    counts = resample_counts(indices, len(mass))
    out = OrderedDict()
    for name, member in groups.items():
        den = (np.asarray(member, bool) & mass).astype(float)
        if not den.any():
            out[name] = {"n": 0}
            continue
        rate_a = 100.0 * safe_divide(counts @ (a_hit * den), counts @ den)
        rate_b = 100.0 * safe_divide(counts @ (b_hit * den), counts @ den)
        test = paired_bootstrap(rate_a, rate_b, level)
        a = 100.0 * float((a_hit * den).sum() / den.sum())
        b = 100.0 * float((b_hit * den).sum() / den.sum())
        out[name] = {"n": int(den.sum()), "a": a, "b": b, "diff": a - b, "ci": test["ci"],
                     "p_bootstrap": test["p_value"],
                     "mcnemar": mcnemar_exact(a_hit[den > 0].astype(bool), b_hit[den > 0].astype(bool))}
    return out


def paired_flags(columns_a: Mapping[str, np.ndarray], columns_b: Mapping[str, np.ndarray], flag: str,
                 among: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """How often a per-image behaviour (e.g. ``top_covers_overlay``) occurs for A and for B on the same images,
    with McNemar's exact p: {"n", "a": count, "b": count, "a_only", "b_only", "p_value"}. ``among``: (N,) bool
    subset (default all images)."""
    among = np.ones(len(columns_a["file_name"]), bool) if among is None else np.asarray(among, bool)
    fa, fb = columns_a[flag].astype(bool)[among], columns_b[flag].astype(bool)[among]
    test = mcnemar_exact(fa, fb)
    return {"n": int(among.sum()), "a": int(fa.sum()), "b": int(fb.sum()), "a_only": test["a_only"],
            "b_only": test["b_only"], "p_value": test["p_value"]}


def spread(values: Sequence[float]) -> Tuple[float, float, float]:
    """(mean, min, max) of per-model values, NaNs ignored; (nan, nan, nan) when none is finite."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return float("nan"), float("nan"), float("nan")
    return float(np.nanmean(values)), float(np.nanmin(values)), float(np.nanmax(values))
