"""Audit of a self-training round's pseudo boxes against the true boxes of the same images, where they are known
(``tools/audit_pseudo_labels.py``): how many hit a true box, how well they overlap, whether their class agrees.
"""
import csv
import os
from typing import Any, Dict, List, Sequence

import numpy as np
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from ..utils.atomic import atomic_open

#: Columns of an audit row / of the CSV.
AUDIT_COLUMNS = ("file_name", "score", "class", "true_class", "iou", "hit")


def _xyxy(ann: Dict[str, Any]) -> List[float]:
    return BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYXY_ABS), BoxMode.XYXY_ABS)


def audit(round_dicts: Sequence[Dict[str, Any]], truth_dicts: Sequence[Dict[str, Any]],
          iou_thresh: float = 0.5) -> List[Dict[str, Any]]:
    """One row per pseudo box of the images with ``supervision == "pseudo"`` in ``round_dicts`` (Detectron2
    dataset dicts of a round), matched by ``file_name`` to ``truth_dicts`` (the same images with their true
    boxes): {"file_name", "score" (the image's pseudo score, else the box's; None if neither), "class",
    "true_class" (of the true box it overlaps most; "" for an image without true boxes), "iou" (its best IoU with
    a true box, 0 when none), "hit" (iou > ``iou_thresh``)}. Raises ValueError naming the images that
    ``truth_dicts`` lacks."""
    truth = {d["file_name"]: d for d in truth_dicts}
    pseudo = [d for d in round_dicts if d.get("supervision") == "pseudo"]
    missing = [d["file_name"] for d in pseudo if d["file_name"] not in truth]
    if missing:
        raise ValueError(f"{len(missing)} pseudo-labelled images are not in the truth file, e.g. {missing[:3]}")
    rows = []
    for d in pseudo:
        true = truth[d["file_name"]].get("annotations", [])
        true_boxes = Boxes(np.asarray([_xyxy(a) for a in true], dtype=np.float32).reshape(-1, 4))
        for ann in d.get("annotations", []):
            box = Boxes(np.asarray([_xyxy(ann)], dtype=np.float32))
            ious = pairwise_iou(box, true_boxes)[0].numpy() if len(true_boxes) else np.zeros(0)
            best = int(np.argmax(ious)) if ious.size else -1
            iou = float(ious[best]) if ious.size else 0.0
            rows.append({"file_name": d["file_name"], "score": d.get("pseudo_score", ann.get("score")),
                         "class": ann["category_id"], "true_class": true[best]["category_id"] if best >= 0 else "",
                         "iou": iou, "hit": iou > iou_thresh})
    return rows


def _summary_line(name: str, part: Sequence[Dict[str, Any]]) -> str:
    if not part:
        return f"{name}: no pseudo boxes"
    iou = np.asarray([r["iou"] for r in part])
    same = np.mean([r["class"] == r["true_class"] for r in part])
    return (f"{name}: {len(part)} pseudo boxes, {100 * np.mean([r['hit'] for r in part]):.1f}% hit a true box, "
            f"median IoU {np.median(iou):.2f}, class agrees with the true box {100 * same:.1f}%")


def summary(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """Text lines of :func:`audit`'s rows: the share of pseudo boxes that hit a true box (percent), the median
    IoU and the class agreement (percent); overall, then per pseudo-score quartile (highest scores first)."""
    lines = [_summary_line("all", rows)]
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: -float(r["score"]))
    for q, part in enumerate(np.array_split(np.arange(len(scored)), 4)):
        if len(part):
            chunk = [scored[i] for i in part]
            lines.append(_summary_line(
                f"score quartile {q + 1} ({float(chunk[-1]['score']):.3f}-{float(chunk[0]['score']):.3f})", chunk))
    return lines


def audit_files(round_file: str, truth_file: str, iou_thresh: float = 0.5) -> List[Dict[str, Any]]:
    """:func:`audit` of two dataset files: a round's ``datasets/train_strong.json`` and a file holding the true
    boxes of the same images (e.g. the prepared ``train_all.json``). Each file's image paths resolve against its
    own image root, so images are matched by the files they name. Raises FileNotFoundError naming a missing
    file, DatasetError (a ValueError) naming a malformed one."""
    from ..data.wssdl_json import load_wssdl_json

    for path in (round_file, truth_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: file not found")
    return audit(load_wssdl_json(round_file), load_wssdl_json(truth_file), iou_thresh)


def write_audit_csv(path: str, rows: Sequence[Dict[str, Any]]) -> str:
    """Write :func:`audit`'s rows to ``path`` (atomically), one line per pseudo box. Returns ``path``."""
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=AUDIT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
