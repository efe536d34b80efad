"""The run-folder layout, one path convention for every tool that writes or reads runs.

A run folder is Detectron2's OUTPUT_DIR: ``config.yaml``, checkpoints (``model_final.pth``), ``log.txt``,
``metrics.json``, and the evaluation's ``inference/`` (``corloc.json``, ``corloc_per_image.csv``,
``corloc_detections.json``). A cross-validation row keeps one run folder a fold: ``<out>/<row>/fold<k>/``; a fold
model tested on another dataset writes ``<run folder>/<dataset>/inference/``.

Only paths are named here (nothing is read or written), so the evaluation readers below the runs use it too.
"""
import os
import re
from dataclasses import dataclass
from typing import Dict, Optional

from .results_io import DETECTIONS_FILE, INFERENCE_DIR, PER_IMAGE_FILE, REPORT_FILE

CONFIG_FILE = "config.yaml"
FINAL_WEIGHTS = "model_final.pth"
#: A fold's folder name inside a row folder: ``fold3`` -> 3.
FOLD_NAME_RE = re.compile(r"^fold(\d+)$")


def fold_name(fold: int) -> str:
    """The folder name of fold ``fold`` in a row folder: 3 -> ``fold3``."""
    return f"fold{int(fold)}"


@dataclass(frozen=True)
class RunDir:
    """One run folder (``path``) and the files the layout puts in it (see the module docstring)."""

    path: str

    @classmethod
    def of_fold(cls, out: str, row: str, fold: int) -> "RunDir":
        """The run of row ``row`` on fold ``fold`` of the cross-validation in ``out``: ``<out>/<row>/fold<k>``."""
        return cls(os.path.join(out, row, fold_name(fold)))

    @property
    def inference(self) -> str:
        """The evaluation's folder: ``<path>/inference``."""
        return os.path.join(self.path, INFERENCE_DIR)

    @property
    def per_image(self) -> str:
        """The per-image outcomes: ``<path>/inference/corloc_per_image.csv``."""
        return os.path.join(self.inference, PER_IMAGE_FILE)

    @property
    def report(self) -> str:
        """The evaluation report: ``<path>/inference/corloc.json``."""
        return os.path.join(self.inference, REPORT_FILE)

    @property
    def detections(self) -> str:
        """The per-image detections: ``<path>/inference/corloc_detections.json``."""
        return os.path.join(self.inference, DETECTIONS_FILE)

    @property
    def config(self) -> str:
        """The run's exact config: ``<path>/config.yaml``."""
        return os.path.join(self.path, CONFIG_FILE)

    @property
    def final_weights(self) -> str:
        """The trained model: ``<path>/model_final.pth``."""
        return os.path.join(self.path, FINAL_WEIGHTS)

    def file(self, name: str) -> str:
        """Another file of the run folder: ``<path>/<name>``."""
        return os.path.join(self.path, name)

    def on(self, dataset: str) -> "RunDir":
        """Where this run's model tested on ``dataset`` writes its evaluation: ``<path>/<dataset>`` (a RunDir whose
        ``inference`` is ``<path>/<dataset>/inference``)."""
        return RunDir(os.path.join(self.path, dataset))

    def is_evaluated(self) -> bool:
        """Whether the per-image outcomes exist."""
        return os.path.isfile(self.per_image)


def fold_dirs(row_dir: str) -> Dict[int, str]:
    """{fold: folder} of the ``fold<k>`` subfolders of a row folder (sorted by fold; {} when there are none or
    ``row_dir`` is not a folder)."""
    if not os.path.isdir(row_dir):
        return {}
    found = {int(m.group(1)): os.path.join(row_dir, name)
             for name in os.listdir(row_dir) for m in [FOLD_NAME_RE.match(name)] if m}
    return dict(sorted(found.items()))


_FOLD_IN_PATH_RE = re.compile(r"fold(\d+)")


def fold_in_path(path: str) -> Optional[int]:
    """The fold a results path names: the number after the last ``fold`` in it (``out/wssdl/fold2/inference`` ->
    2), or None when it names none."""
    found = _FOLD_IN_PATH_RE.findall(path)
    return int(found[-1]) if found else None
