"""Evaluated runs as the analysis tools read them: a run folder (or its ``inference/`` folder, or a file in it)
holding what :mod:`.results_io` writes, plus what training left beside it (``config.yaml``, ``metrics.json``).
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from . import results_io


def run_folder(path: str) -> str:
    """The run folder of a results folder: the parent of an ``inference/`` folder, else ``path`` itself."""
    path = os.path.abspath(path)
    return os.path.dirname(path) if os.path.basename(path) == "inference" else path


def run_name(path: str) -> str:
    """A run's default name: the base name of its run folder (``output/busi/wssdl/inference`` -> ``wssdl``)."""
    return os.path.basename(run_folder(path))


def distinct_names(names: Sequence[str]) -> List[str]:
    """``names``, each prefixed with its position (``"0: wssdl"``) when two of them are the same."""
    return list(names) if len(set(names)) == len(names) else [f"{k}: {n}" for k, n in enumerate(names)]


def read_reports(folders: Sequence[str], names: Sequence[str]) -> List[Optional[Dict[str, Any]]]:
    """The ``corloc.json`` report of each results folder (None where a folder has only the per-image CSV).
    Raises ResultsError when two reports were evaluated with a different tau or IoU threshold, naming both runs
    (``names``, one per folder) and the setting."""
    reports = [results_io.read_report(f) if os.path.isfile(os.path.join(f, results_io.REPORT_FILE)) else None
               for f in folders]
    present = [(name, r) for name, r in zip(names, reports) if r]
    for (name_a, a), (name_b, b) in zip(present, present[1:]):
        for key in ("tau", "iou_thresh"):
            if a["settings"].get(key) != b["settings"].get(key):
                raise results_io.ResultsError(
                    f"{name_a} was evaluated with {key} {a['settings'].get(key)} but {name_b} with {key} "
                    f"{b['settings'].get(key)}: re-evaluate one of them (WSSDL.EVAL.SCORE_THRESH / IOU_THRESH) "
                    "before comparing")
    return reports


def load_run(path: str) -> Dict[str, Any]:
    """Everything an example page needs of one evaluated run: {"folder": its results folder, "report":
    ``corloc.json``, "rows": one dict per test image (the per-image CSV's columns), "detections": the
    ``corloc_detections.json`` entry of each row's image, in the rows' order}. Raises ResultsError naming the
    folder when an image of the CSV has no detections entry."""
    folder = results_io.resolve_results_dir(path)
    report = results_io.read_report(folder)
    columns = results_io.read_per_image(folder)
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(columns["file_name"]))]
    detections = {d["file_name"]: d for d in results_io.read_detections(folder)}
    missing = [r["file_name"] for r in rows if r["file_name"] not in detections]
    if missing:
        raise results_io.ResultsError(f"{folder}: {len(missing)} images of {results_io.PER_IMAGE_FILE} are not in "
                                      f"{results_io.DETECTIONS_FILE}, e.g. {missing[0]}")
    return {"folder": folder, "report": report, "rows": rows,
            "detections": [detections[r["file_name"]] for r in rows]}


def last_ap50(folder: str) -> Optional[float]:
    """The last ``bbox/AP50`` (percent) logged in ``<folder>/metrics.json`` (Detectron2's JSONWriter: one JSON
    object per line), else the one in ``<folder>/results.json`` (a checkpoint evaluated by
    :mod:`wssdl_d2.engine.checkpoint_curve`); None when neither has one."""
    value = None
    path = os.path.join(folder, "metrics.json")
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if '"bbox/AP50"' in line:
                    value = json.loads(line)["bbox/AP50"]
    path = os.path.join(folder, "results.json")
    if value is None and os.path.isfile(path):
        with open(path) as f:
            value = json.load(f).get("results", {}).get("bbox/AP50")
    return value


def boxed_images(folder: str) -> int:
    """How many images with boxes drawn by a person (``supervision == "strong"``; pseudo boxes do not count) the
    run in ``folder`` trained on: its ``config.yaml``'s ``DATASETS.TRAIN``, read through Detectron2's
    ``DatasetCatalog``. Raises ResultsError naming the file when there is no config or a dataset is unknown."""
    from detectron2.data import DatasetCatalog

    from ..config import load_config

    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        raise results_io.ResultsError(f"{folder}: no config.yaml to count its boxed images: give NAME=RUN:BOXES")
    cfg = load_config(path)
    try:
        return sum(d.get("supervision", "strong") == "strong"
                   for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name))
    except KeyError as err:
        raise results_io.ResultsError(f"{path}: {err}; give NAME=RUN:BOXES") from None
