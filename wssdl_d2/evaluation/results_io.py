"""The files a CorLoc evaluation writes into ``OUTPUT_DIR/inference/`` and how tools read them back.

- ``corloc.json``: the report (settings, counts, metrics with CIs, FROC points, confusion matrix, ROC points),
  the flat metrics, the dataset name. NaN / inf are written as null.
- ``corloc_per_image.csv``: one row per test image, the columns of ``outcomes.OUTCOME_COLUMNS``.
- ``corloc_detections.json``: per image its file, label, ground-truth boxes and detections (for example pages).
"""
import csv
import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..utils.atomic import atomic_open, atomic_write_json
from .outcomes import OUTCOME_COLUMNS

REPORT_FILE = "corloc.json"
PER_IMAGE_FILE = "corloc_per_image.csv"
#: The evaluation's folder inside a run folder (Detectron2's ``OUTPUT_DIR/inference``).
INFERENCE_DIR = "inference"
DETECTIONS_FILE = "corloc_detections.json"

_INT_COLUMNS = ("image_id", "image_label", "num_gt", "num_det", "num_det_at_tau", "fp_at_tau", "predicted_label")
_BOOL_COLUMNS = ("has_mass", "hit_any", "hit_top1")
_FLOAT_COLUMNS = ("top1_score", "top1_iou", "best_iou", "malignancy_score", "abnormality_score")


class ResultsError(UserError, ValueError):
    """A results file or folder that cannot be used; the message names it and the problem."""


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with numpy scalars / arrays as Python values and NaN / inf floats as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_report(folder: str, report: Mapping[str, Any]) -> str:
    """Write ``corloc.json`` into ``folder``. Returns its path."""
    path = os.path.join(folder, REPORT_FILE)
    atomic_write_json(path, json_safe(report), indent=1)
    return path


def write_per_image(folder: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """Write ``corloc_per_image.csv`` (rows: dicts with the outcome columns). Returns its path."""
    path = os.path.join(folder, PER_IMAGE_FILE)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=OUTCOME_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(row[k]) for k in OUTCOME_COLUMNS})
    return path


def csv_cell(value):
    """A value as written to this project's CSV files: booleans as 0 / 1, floats with 6 significant digits, NaN as an
    empty cell, anything else as is."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def write_detections(folder: str, images: List[Dict[str, Any]]) -> str:
    """Write ``corloc_detections.json``: a list of per-image dicts with image_id, file_name, image_label,
    gt_boxes (K, 4) / gt_classes (K,) and the detections boxes (D, 4) XYXY, scores (D,), classes (D,)."""
    path = os.path.join(folder, DETECTIONS_FILE)
    atomic_write_json(path, json_safe(images))
    return path


def find_results_folder(path: str, names: Sequence[str]) -> Tuple[str, Optional[str]]:
    """(the folder ``path`` names: itself, or a file's folder; the first of it and its ``inference/`` that holds
    one of the files ``names``, or None)."""
    if os.path.isfile(path):
        path = os.path.dirname(os.path.abspath(path))
    for folder in (path, os.path.join(path, INFERENCE_DIR)):
        if any(os.path.isfile(os.path.join(folder, name)) for name in names):
            return path, folder
    return path, None


def resolve_results_dir(path: str) -> str:
    """The folder holding ``corloc.json`` for a run folder, its ``inference/`` folder or a file in it."""
    path, folder = find_results_folder(path, (REPORT_FILE, PER_IMAGE_FILE))
    if folder:
        return folder
    if not os.path.exists(path):
        raise ResultsError(f"{path}: no such file or folder")
    raise ResultsError(f"{path}: no {REPORT_FILE} or {PER_IMAGE_FILE} here or in {os.path.join(path, INFERENCE_DIR)} "
                       "(run tools/train_net.py --eval-only with WSSDL.EVAL.CORLOC True first)")


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None


def read_report(folder: str) -> Dict[str, Any]:
    """``corloc.json`` of a results folder as a dict."""
    path = os.path.join(folder, REPORT_FILE)
    report = _read_json(path)
    if not isinstance(report, dict) or not {"metrics", "settings", "counts"} <= report.keys():
        raise ResultsError(f"{path}: not a CorLoc report (needs metrics, settings and counts)")
    return report


def read_per_image(folder: str) -> Dict[str, np.ndarray]:
    """``corloc_per_image.csv`` of a results folder as columns: name -> numpy array (N,)."""
    path = os.path.join(folder, PER_IMAGE_FILE)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in OUTCOME_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ResultsError(f"{path}: missing columns {missing}")
            rows = list(reader)
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    columns = {"file_name": np.asarray([r["file_name"] for r in rows], dtype=object)}
    for names, parse in ((_INT_COLUMNS, int), (_BOOL_COLUMNS, lambda v: bool(int(v))),
                         (_FLOAT_COLUMNS, lambda v: float(v) if v != "" else math.nan)):
        for name in names:
            try:
                columns[name] = np.asarray([parse(r[name]) for r in rows])
            except (TypeError, ValueError) as err:
                raise ResultsError(f"{path}: column {name!r} has a bad value ({err})") from None
    for name in _INT_COLUMNS:
        columns[name] = columns[name].astype(np.int64)
    for name in _BOOL_COLUMNS:
        columns[name] = columns[name].astype(bool)
    for name in _FLOAT_COLUMNS:
        columns[name] = columns[name].astype(np.float64)
    if len(set(columns["file_name"])) != len(rows):
        raise ResultsError(f"{path}: the same file_name appears on several rows")
    return columns


def read_detections(folder: str) -> List[Dict[str, Any]]:
    """``corloc_detections.json`` of a results folder as a list of per-image dicts."""
    path = os.path.join(folder, DETECTIONS_FILE)
    images = _read_json(path)
    if not isinstance(images, list):
        raise ResultsError(f"{path}: expected a list of images")
    return images
