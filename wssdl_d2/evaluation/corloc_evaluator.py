"""``CorLocEvaluator``: Detectron2 DatasetEvaluator for CorLoc (two definitions), FROC and image diagnosis.

Used by ``tools/train_net.py --eval-only`` and by the trainer's periodic evaluation (``TEST.EVAL_PERIOD``)
when ``WSSDL.EVAL.CORLOC`` is on. It collects each image's ``instances`` (pred_boxes, scores, pred_classes),
gathers them on the main process, scores them against the dataset's ground truth (``DatasetCatalog``:
``image_label``, XYXY_ABS ``annotations``), and then

- logs tables (CorLoc with CIs per definition and class, FP / normal image, FROC, AUCs, accuracy, confusion),
- writes ``corloc.json``, ``corloc_per_image.csv``, ``corloc_detections.json`` and, with ``WSSDL.EVAL.PLOTS``,
  ``corloc_froc.png``, ``corloc_roc.png``, ``corloc_bars.png`` into its output folder,
- returns ``{"corloc": {flat metrics}}`` (see ``metrics``), which Detectron2 prints, puts into the event
  storage during training (TensorBoard: ``corloc/CorLoc`` ...) and checks with ``TEST.EXPECTED_RESULTS``.

The malignancy score behind the AUC is the top malignant-class detection score (see ``outcomes``): the
detections keep only their winning class's probability, so the full class distribution is not used.
"""
import logging
import os
import time
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from . import results_io
from .metrics import compute_metrics, flat_metrics
from .outcomes import OutcomeTable
from .tables import confusion_table, corloc_table, diagnosis_table

logger = logging.getLogger(__name__)


def ground_truth(record: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    """(K, 4) XYXY_ABS boxes and (K,) classes of a dataset dict's non-crowd annotations."""
    boxes, classes = [], []
    for ann in record.get("annotations") or []:
        if ann.get("iscrowd", 0):
            continue
        boxes.append(BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS))
        classes.append(int(ann["category_id"]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.int64)


class CorLocEvaluator(DatasetEvaluator):
    """CorLoc / FROC / diagnosis evaluation of one dataset (see the module docstring)."""

    def __init__(self, dataset_name, output_dir=None, tau=0.5, iou_thresh=0.5, bootstrap_samples=2000,
                 bootstrap_seed=0, ci_level=0.95, plots=True, distributed=True):
        """
        Args:
            dataset_name: a registered dataset whose dicts carry ``image_label`` and ``annotations``.
            output_dir: folder for the JSON / CSV / PNG files (None: write nothing).
            tau: score threshold of the authors' CorLoc, of false positives and of the predicted label.
            iou_thresh: a hit needs IoU strictly above it.
            bootstrap_samples, bootstrap_seed, ci_level: the bootstrap confidence intervals.
            plots: write the PNG plots (needs output_dir).
            distributed: gather predictions from all processes (False: evaluate this process's only).
        """
        if not 0.0 < ci_level < 1.0:
            raise ValueError(f"ci_level must lie in (0, 1), got {ci_level}")
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._tau, self._iou_thresh = float(tau), float(iou_thresh)
        self._samples, self._seed, self._level = int(bootstrap_samples), int(bootstrap_seed), float(ci_level)
        self._plots = plots
        self._distributed = distributed
        self._predictions = []

    @classmethod
    def from_config(cls, cfg, dataset_name, output_dir=None):
        """An evaluator with the settings of ``cfg.WSSDL.EVAL``."""
        e = cfg.WSSDL.EVAL
        return cls(dataset_name, output_dir, tau=e.SCORE_THRESH, iou_thresh=e.IOU_THRESH,
                   bootstrap_samples=e.BOOTSTRAP_SAMPLES, bootstrap_seed=e.BOOTSTRAP_SEED, ci_level=e.CI_LEVEL,
                   plots=e.PLOTS)

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            if "instances" not in out:
                raise KeyError(f"{self.__class__.__name__} needs 'instances' in the model outputs, "
                               f"got {sorted(out)} for image {inp.get('file_name', inp.get('image_id'))}")
            inst = out["instances"].to("cpu")
            self._predictions.append({
                "image_id": inp["image_id"],
                "boxes": inst.pred_boxes.tensor.numpy().astype(np.float64),
                "scores": inst.scores.numpy().astype(np.float64),
                "classes": inst.pred_classes.numpy().astype(np.int64),
            })

    def _gather(self):
        if not self._distributed:
            return self._predictions
        comm.synchronize()
        gathered = comm.gather(self._predictions, dst=0)
        return [p for part in gathered for p in part] if comm.is_main_process() else None

    def evaluate(self):
        predictions = self._gather()
        if predictions is None:
            return {}
        if not predictions:
            logger.warning(f"[CorLocEvaluator] no predictions for {self._dataset_name}: nothing evaluated")
            return {}
        start = time.perf_counter()
        table, images = self.score(predictions)
        report = compute_metrics(table, self._tau, self._iou_thresh, self._samples, self._seed, self._level)
        flat = flat_metrics(report)
        report.update(dataset=self._dataset_name, flat_metrics=flat)
        self._log(report)
        if self._output_dir:
            self._write(report, table, images)
        report_seconds = time.perf_counter() - start
        _visible_logger().info(f"CorLoc evaluation of {len(table)} images took {report_seconds:.2f} s "
                               f"({self._samples} bootstrap resamples)")
        return OrderedDict(corloc=flat)

    def score(self, predictions: Sequence[Dict[str, Any]]) -> Tuple[OutcomeTable, List[Dict[str, Any]]]:
        """Per-image outcomes of ``predictions`` (list of {image_id, boxes, scores, classes}) against the
        dataset. Returns the :class:`OutcomeTable` and the per-image entries of ``corloc_detections.json``."""
        records = DatasetCatalog.get(self._dataset_name)
        by_id = {}
        for pred in predictions:  # an image inferred twice (padding of a distributed sampler) is kept once
            by_id.setdefault(pred["image_id"], pred)
        unknown = set(by_id) - {r["image_id"] for r in records}
        if unknown:
            raise KeyError(f"[CorLocEvaluator] image ids {sorted(unknown, key=str)[:5]} were predicted but are "
                           f"not in dataset {self._dataset_name}")
        table, images = OutcomeTable(), []
        for record in records:
            pred = by_id.get(record["image_id"])
            if pred is None:
                continue
            if "image_label" not in record:
                raise KeyError(f"[CorLocEvaluator] dataset {self._dataset_name}: image {record.get('file_name')} "
                               "has no image_label (0 normal, 1 benign, 2 malignant)")
            gt_boxes, gt_classes = ground_truth(record)
            table.add(record["image_id"], record["file_name"], int(record["image_label"]), gt_boxes, gt_classes,
                      pred["boxes"], pred["scores"], pred["classes"], self._tau, self._iou_thresh)
            images.append({"image_id": record["image_id"], "file_name": record["file_name"],
                           "image_label": int(record["image_label"]),
                           "gt_boxes": gt_boxes, "gt_classes": gt_classes, "boxes": pred["boxes"].round(2),
                           "scores": pred["scores"].round(4), "classes": pred["classes"]})
        if len(by_id) < len(records):
            logger.warning(f"[CorLocEvaluator] {len(records) - len(by_id)} of {len(records)} images of "
                           f"{self._dataset_name} have no prediction; they are left out")
        return table, images

    def _log(self, report):
        out = _visible_logger()
        out.info(f"CorLoc evaluation of {self._dataset_name}:\n" + corloc_table(report))
        out.info("Image-level diagnosis and false positives:\n" + diagnosis_table(report))
        out.info("Confusion matrix (rows true, columns predicted):\n" + confusion_table(report))

    def _write(self, report, table, images):
        os.makedirs(self._output_dir, exist_ok=True)
        paths = [results_io.write_report(self._output_dir, report),
                 results_io.write_per_image(self._output_dir, table.rows),
                 results_io.write_detections(self._output_dir, images)]
        if self._plots:
            from .plots import write_run_plots

            paths += write_run_plots(self._output_dir, report, name=self._dataset_name)
        _visible_logger().info("CorLoc results written: " + ", ".join(paths))


def _visible_logger():
    """This module's logger, given a console handler (main process) when nothing would show its INFO lines
    (Detectron2's ``default_setup`` configures only the ``detectron2`` and ``fvcore`` loggers)."""
    if not logger.hasHandlers():
        setup_logger(name=__name__.split(".")[0], distributed_rank=comm.get_rank(), abbrev_name="wssdl")
    return logger
