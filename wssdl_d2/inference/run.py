"""Runs a predictor over many image files: reads each (PNG / JPEG / TIFF / DICOM), predicts, draws, and writes
the drawings plus ``predictions.json`` / ``predictions.csv`` (see :mod:`.results`), with a progress bar.

A file that cannot be read, or that the model cannot take (an absurdly elongated image), is reported with the
reason in the ``errors`` list and the run goes on.
"""
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Union

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.errors import DatasetError
from ..data.image_io import load_image
from .predictor import Prediction
from .results import prediction_record, write_predictions
from .visualize import draw_prediction


def _unique_names(files):
    """A distinct output stem per file: its own stem, then ``<stem>_2``, ``<stem>_3`` for repeats."""
    names, used = [], set()
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0] or "image"
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        names.append(name)
    return names


def predict_files(predictor: Callable[[np.ndarray], Prediction], files: Sequence[Union[str, os.PathLike]],
                  output_dir: Optional[str] = None, threshold: float = 0.5, frame: int = 0, visualize: bool = True,
                  progress: bool = True, log: Callable[[str], Any] = print) -> Dict[str, Any]:
    """Predict every file; write the drawings and result files into ``output_dir`` (None: write nothing).

    Args:
        predictor: a :class:`.WSSDLPredictor` (or any callable BGR image -> :class:`.Prediction`).
        threshold: detections with score >= this are drawn and listed.
        frame: frame of multi-frame DICOM / pages of TIFF files (see :mod:`wssdl_d2.data.image_io`).
    Returns:
        dict with ``images`` (records), ``errors`` ({"file", "error"}), ``seconds`` (the whole loop),
        ``model_seconds`` (inside the predictor) and ``images_per_second``.
    """
    records, errors = [], []
    model_seconds = 0.0
    start = time.perf_counter()
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
    bar = tqdm(list(zip(files, _unique_names(files))), desc="inference", unit="image",
               disable=not progress or len(files) < 2)
    for path, name in bar:
        try:
            loaded = load_image(path, "BGR", frame)
        except DatasetError as err:
            errors.append({"file": os.fspath(path), "error": err.problem})
            (bar.write if progress else log)(f"skipped {err}")
            continue
        tick = time.perf_counter()
        try:
            prediction = predictor(loaded.pixels)
        except ValueError as err:  # the predictor's clear refusals (image size)
            errors.append({"file": os.fspath(path), "error": str(err)})
            (bar.write if progress else log)(f"skipped {path}: {err}")
            continue
        finally:
            model_seconds += time.perf_counter() - tick
        vis_path = None
        if output_dir and visualize:
            vis_path = os.path.join(output_dir, name + ".png")
            drawing = draw_prediction(loaded.pixels[:, :, ::-1], prediction, threshold)
            Image.fromarray(drawing).save(vis_path)
        records.append(prediction_record(path, loaded, prediction, threshold, vis_path))
    seconds = time.perf_counter() - start
    summary = {"images": records, "errors": errors, "seconds": round(seconds, 3),
               "model_seconds": round(model_seconds, 3),
               "images_per_second": round(len(records) / seconds, 3) if seconds > 0 and records else 0.0}
    if output_dir:
        info = {k: v for k, v in summary.items() if k not in ("images", "errors")}
        info["threshold"] = threshold
        write_predictions(output_dir, records, errors, info)
    return summary
