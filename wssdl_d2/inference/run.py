"""Runs a predictor over many image files: reads each (PNG / JPEG / TIFF / DICOM), predicts, draws, and writes
the drawings plus ``predictions.json`` / ``predictions.csv`` (see :mod:`.results`), with a progress bar.

A file that cannot be read, or that the model cannot take (an absurdly elongated image), is reported with the
reason in the ``errors`` list and the run goes on.

Nothing is ever written over an input: an output folder where a drawing or result file would replace one of the
input files (``--output`` the scans' own folder, or a folder of earlier drawings also given as input), or an
output path that is a file, is refused before anything is read (:func:`check_output_dir`). Drawings of images
larger than :data:`MAX_DRAWING_SIDE` are made on a downscaled copy (the detections in the result files stay in
the original pixels), so a 9000 x 9000 scan costs a few hundred MB and about a second to draw.
"""
import dataclasses
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Union

import cv2
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


#: Longest side, in pixels, of a drawing; larger images are drawn downscaled to it.
MAX_DRAWING_SIDE = 2048
RESULT_FILES = ("predictions.json", "predictions.csv")


def _file_id(path):
    """(device, inode) of an existing file (links to one file share it), None for a missing one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_output_dir(output_dir: Optional[str], files: Sequence[Union[str, os.PathLike]],
                     visualize: bool = True) -> None:
    """Raise ValueError (one line) when ``output_dir`` is an existing file, or when a file :func:`predict_files`
    would write there (a drawing ``<name>.png``, ``predictions.json`` / ``.csv``) is one of the input ``files``."""
    if not output_dir:
        return
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output {output_dir} is a file, not a folder: give a folder for the drawings and "
                         f"{' / '.join(RESULT_FILES)}")
    outputs = [os.path.join(output_dir, f) for f in RESULT_FILES]
    if visualize:
        outputs += [os.path.join(output_dir, name + ".png") for name in _unique_names(files)]
    inputs = {_file_id(f): os.fspath(f) for f in files}
    inputs.pop(None, None)
    for out in outputs:
        path = inputs.get(_file_id(out))
        if path is not None:
            raise ValueError(f"--output {output_dir} would overwrite the input {path} (with {out}): "
                             f"choose an output folder that holds none of the inputs")


def _drawing(image_bgr, prediction, threshold):
    """The RGB drawing of ``prediction`` on ``image_bgr``, downscaled to :data:`MAX_DRAWING_SIDE` if larger."""
    height, width = image_bgr.shape[:2]
    scale = MAX_DRAWING_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        factors = np.array([size[0] / width, size[1] / height] * 2, dtype=np.float32)
        prediction = dataclasses.replace(prediction, boxes=prediction.boxes * factors, width=size[0], height=size[1])
    return draw_prediction(image_bgr[:, :, ::-1], prediction, threshold)


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
    Raises:
        ValueError: ``output_dir`` is a file, or writing into it would replace an input (:func:`check_output_dir`).
    """
    check_output_dir(output_dir, files, visualize)
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
            drawing = _drawing(loaded.pixels, prediction, threshold)
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
