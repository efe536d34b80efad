"""The files a CorLoc evaluation writes into ``OUTPUT_DIR/inference/`` and how tools read them back.

- ``corloc.json``: the report (settings, counts, metrics with CIs, FROC points, confusion matrix, ROC points),
  the flat metrics, the dataset name. NaN / inf are written as null.
- ``corloc_per_image.csv``: one row per test image, the columns of ``outcomes.OUTCOME_COLUMNS``.
- ``corloc_detections.json``: per image its file, label, ground-truth boxes and detections (for example pages).

A comparison's per-image outcomes, every row (config) x fold (x seed) in one file, go into ``<stem>_outcomes.csv.gz``
(:func:`write_outcomes` / :func:`read_outcomes`): with it anyone can recompute the report's numbers without the models.
"""
import csv
import gzip
import io
import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

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
    columns = _parse_columns(rows, path)
    if len(set(columns["file_name"])) != len(rows):
        raise ResultsError(f"{path}: the same file_name appears on several rows")
    return columns


def _parse_columns(rows: Sequence[Mapping[str, str]], path: str) -> Dict[str, np.ndarray]:
    """The outcome columns of CSV rows (strings) as typed arrays (N,); a bad value names ``path`` and the column."""
    columns = {"file_name": np.asarray([r["file_name"] for r in rows], dtype=object)}
    for names, parse, dtype in ((_INT_COLUMNS, int, np.int64), (_BOOL_COLUMNS, lambda v: bool(int(v)), bool),
                                (_FLOAT_COLUMNS, lambda v: float(v) if v != "" else math.nan, np.float64)):
        for name in names:
            try:
                columns[name] = np.asarray([parse(r[name]) for r in rows]).astype(dtype)
            except (TypeError, ValueError) as err:
                raise ResultsError(f"{path}: column {name!r} has a bad value ({err})") from None
    return columns


#: The columns of an outcomes file before the per-image outcome columns.
OUTCOMES_KEYS = ("row", "seed", "fold", "group")


def _relative_names(file_names: Sequence[str]) -> Dict[str, str]:
    """{path: the same path relative to the folder all the images share, their own folder kept (e.g.
    ``benign/benign (1).png``)}; paths that share no folder are kept as they are."""
    folders = sorted({os.path.dirname(str(f)) for f in file_names})
    try:
        base = os.path.commonpath(folders) if folders else ""
    except ValueError:  # absolute and relative paths mixed
        return {str(f): str(f) for f in file_names}
    if len(folders) == 1:
        base = os.path.dirname(base)
    return {str(f): os.path.relpath(str(f), base) if base else str(f) for f in file_names}


def cluster_labels(file_names: Sequence[str], groups: Mapping[str, int], name: str = "run") -> np.ndarray:
    """(N,) int64 near-duplicate group of each pooled image, for ``clusters=`` of :func:`.pooled.compare_pooled`.

    ``groups`` maps image paths relative to the image root (``"benign/benign (10).png"``, as
    :func:`wssdl_d2.data.prepared.read_near_duplicate_groups` returns) to group ids; ``file_names`` may be those
    relative paths or any path ending in one (the per-image CSVs hold the full path). Raises ResultsError naming the
    images that have no group.
    """
    out, missing = np.empty(len(file_names), np.int64), []
    for k, file_name in enumerate(map(str, file_names)):
        parts = file_name.replace(os.sep, "/").split("/")
        key = next(("/".join(parts[-n:]) for n in range(1, len(parts) + 1) if "/".join(parts[-n:]) in groups), None)
        if key is None:
            missing.append(file_name)
        else:
            out[k] = groups[key]
    if missing:
        raise ResultsError(f"{name}: {len(missing)} images have no near-duplicate group (was the pool prepared with "
                           f"another image set?): {', '.join(missing[:5])}")
    return out


def write_outcomes(path: str, pooled_by_row: Mapping[str, Mapping[str, np.ndarray]],
                   groups: Optional[Mapping[str, int]] = None, seed: Union[int, Mapping[str, int]] = -1) -> str:
    """Write every row's pooled per-image outcomes into one gzip-compressed CSV (deterministic bytes).

    Args:
        pooled_by_row: {row name: pooled columns (N,) with ``fold``} (as ``wssdl_d2.crossval.run_crossval`` pools).
        groups: {image path relative to the image root: near-duplicate group}, written as ``group`` (-1 without).
        seed: the training seed of these runs, or {row: seed}, written as ``seed`` (-1: not known, or drawn at
            random per run as Detectron2 does for ``SEED -1``; its log says which).
    Columns: row, seed, fold, group, then ``outcomes.OUTCOME_COLUMNS`` with ``file_name`` relative to the folder
    the images share (no machine's paths). Returns ``path``.
    """
    names = _relative_names([f for pooled in pooled_by_row.values() for f in pooled["file_name"]])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(OUTCOMES_KEYS) + list(OUTCOME_COLUMNS))
    for row, pooled in pooled_by_row.items():
        group = cluster_labels(pooled["file_name"], groups, row) if groups else np.full(len(pooled["fold"]), -1)
        row_seed = int(seed.get(row, -1)) if isinstance(seed, Mapping) else int(seed)
        for k in range(len(pooled["fold"])):
            cells = [row, row_seed, int(pooled["fold"][k]), int(group[k])]
            cells += [names[str(pooled["file_name"][k])] if c == "file_name" else csv_cell(pooled[c][k])
                      for c in OUTCOME_COLUMNS]
            writer.writerow(cells)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
            z.write(buffer.getvalue().encode())
    return path


def read_outcomes(path: str) -> Tuple[Dict[str, Dict[str, np.ndarray]], Optional[Dict[str, int]]]:
    """An outcomes file (:func:`write_outcomes`) back as ({row: pooled columns with ``fold``}, groups or None).
    Raises ResultsError naming the file for a missing file, missing columns or a bad value."""
    try:
        with gzip.open(path, "rt", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in OUTCOMES_KEYS + tuple(OUTCOME_COLUMNS) if c not in (reader.fieldnames or [])]
            if missing:
                raise ResultsError(f"{path}: not an outcomes file (missing columns {missing})")
            rows = list(reader)
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except (OSError, EOFError) as err:
        raise ResultsError(f"{path}: not a gzip-compressed outcomes file ({err})") from None
    by_row: Dict[str, List[Mapping[str, str]]] = {}
    for r in rows:
        by_row.setdefault(r["row"], []).append(r)
    pooled, groups = {}, {}
    for name, members in by_row.items():
        columns = _parse_columns(members, path)
        try:
            columns["fold"] = np.asarray([int(r["fold"]) for r in members], np.int64)
            group = [int(r["group"]) for r in members]
        except ValueError as err:
            raise ResultsError(f"{path}: row {name!r} has a bad fold or group ({err})") from None
        pooled[name] = columns
        groups.update({f: g for f, g in zip(columns["file_name"], group) if g >= 0})
    return pooled, groups or None


def read_detections(folder: str) -> List[Dict[str, Any]]:
    """``corloc_detections.json`` of a results folder as a list of per-image dicts."""
    path = os.path.join(folder, DETECTIONS_FILE)
    images = _read_json(path)
    if not isinstance(images, list):
        raise ResultsError(f"{path}: expected a list of images")
    return images


def run_seed(run_dir: str) -> int:
    """The ``SEED`` a run folder's ``config.yaml`` was trained with (-1: drawn at random by Detectron2, or no config
    there). Read as text: nothing in the file is executed."""
    try:
        with open(os.path.join(run_dir, "config.yaml")) as f:
            for line in f:
                if line.startswith("SEED:"):
                    return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return -1
