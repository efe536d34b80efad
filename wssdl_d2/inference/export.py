"""Deployment export: TorchScript by tracing (Detectron2's ``TracingAdapter`` + ``torch.jit.trace``).

Why tracing: this torch deprecates ``torch.jit`` (``trace`` and ``script`` warn) but tracing still works and
gives the same boxes as the Python model, also at other image sizes. ``torch.export`` does not work on
Detectron2's R-CNN: it stops at data-dependent Python control flow (``if not valid_mask.all()`` in the RPN's
``find_top_rpn_proposals``, a GuardOnDataDependentSymNode error), and ``torch.onnx.export`` goes through
``torch.export`` by default (the onnx package is not installed here either).

The traced module takes the preprocessed image and returns flat tensors:

- input: (3, H, W) float32, channels in ``INPUT.FORMAT`` order (BGR), 0..255, already resized so the short side is
  ``INPUT.MIN_SIZE_TEST`` and the long side at most ``INPUT.MAX_SIZE_TEST`` (pixel normalisation is inside);
- outputs: ``boxes`` (N, 4) XYXY in the resized image's pixels, ``classes`` (N,) int64, ``scores`` (N,), and the
  (2,) size the boxes were clipped to; test-time score threshold and NMS are inside.

``<name>.json`` beside the ``.ts`` file records this contract and the preprocessing parameters;
:class:`TorchScriptPredictor` applies it and returns the same :class:`.Prediction` as :class:`.WSSDLPredictor`.
"""
import contextlib
import json
import logging
import os
import warnings
from typing import Any, Dict

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.export import TracingAdapter
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..data.wssdl_json import THING_CLASSES
from ..model_zoo.safe_load import build_trained_model
from ..utils.atomic import atomic_open, atomic_write_json
from .predictor import prediction_from_instances, preprocess

logger = logging.getLogger(__name__)
OUTPUTS = ("boxes", "classes", "scores", "image_size")


def _inference(model, inputs):
    """The model's detections before rescaling to the original size (what gets traced)."""
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def _flat_outputs(adapter_outputs):
    """The traced module's outputs as a dict (the adapter flattens Instances field by field)."""
    if len(adapter_outputs) != len(OUTPUTS):
        raise ValueError(f"expected {len(OUTPUTS)} outputs ({', '.join(OUTPUTS)}), got {len(adapter_outputs)}")
    return dict(zip(OUTPUTS, adapter_outputs))


@contextlib.contextmanager
def _quiet_jit():
    """Silence what tracing is known to print: TracerWarnings about Python values in Detectron2's code,
    torch.jit's deprecation notices and torch.meshgrid's indexing notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*torch\.meshgrid.*indexing.*")
        yield


def trace_model(model: torch.nn.Module, image: torch.Tensor) -> torch.jit.ScriptModule:
    """A ``torch.jit.ScriptModule`` tracing ``model`` (eval mode) on ``image`` ((3, h, w) float32)."""
    model.eval()
    adapter = TracingAdapter(model, [{"image": image}], _inference)
    with _quiet_jit(), torch.no_grad():
        return torch.jit.trace(adapter, (image,), check_trace=False)


def _to_instances(outputs, resized_hw, height, width):
    instances = Instances(tuple(int(v) for v in resized_hw))
    instances.pred_boxes = Boxes(outputs["boxes"])
    instances.pred_classes = outputs["classes"]
    instances.scores = outputs["scores"]
    return detector_postprocess(instances, height, width)


class TorchScriptPredictor:
    """Runs an exported ``.ts`` file on (H, W, 3) uint8 BGR images; returns :class:`.Prediction` like
    :class:`.WSSDLPredictor` (boxes in the original image's pixels, the diagnosis with the recorded threshold)."""

    def __init__(self, path):
        with open(os.path.splitext(path)[0] + ".json") as f:
            self.meta = json.load(f)
        with _quiet_jit():
            self.module = torch.jit.load(path, map_location="cpu").eval()

    def __call__(self, image_bgr):
        height, width = image_bgr.shape[:2]
        image = preprocess(image_bgr, self.meta["min_size_test"], self.meta["max_size_test"],
                           self.meta["input_format"])
        with torch.no_grad():
            outputs = _flat_outputs(self.module(image))
        instances = _to_instances(outputs, image.shape[1:], height, width)
        return prediction_from_instances(instances, self.meta["diagnosis_threshold"])


def export_torchscript(cfg: CfgNode, sample_image_bgr: np.ndarray, output_path: str) -> Dict[str, Any]:
    """Trace the model of ``cfg`` (weights from ``MODEL.WEIGHTS``) on ``sample_image_bgr`` and write
    ``output_path`` (``.ts``) and its ``.json`` contract. Returns the contract dict, with ``max_box_difference``
    and ``max_score_difference`` between the traced and the Python model on the sample image."""
    model = build_trained_model(cfg)
    image = preprocess(sample_image_bgr, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    traced = trace_model(model, image)
    with torch.no_grad():
        reference = _inference(model, [{"image": image}])[0]["instances"]
        outputs = _flat_outputs(traced(image))
    if len(outputs["boxes"]) != len(reference):
        raise RuntimeError(f"traced model gives {len(outputs['boxes'])} detections, the Python model {len(reference)}")
    box_diff = float((outputs["boxes"] - reference.pred_boxes.tensor).abs().max()) if len(reference) else 0.0
    score_diff = float((outputs["scores"] - reference.scores).abs().max()) if len(reference) else 0.0
    with atomic_open(output_path, "wb") as f, _quiet_jit():
        torch.jit.save(traced, f)
    meta = {
        "format": "torchscript", "exporter": "detectron2.export.TracingAdapter + torch.jit.trace",
        "input_format": cfg.INPUT.FORMAT, "min_size_test": int(cfg.INPUT.MIN_SIZE_TEST),
        "max_size_test": int(cfg.INPUT.MAX_SIZE_TEST),
        "input": "(3, h, w) float32 0..255, short side resized to min_size_test, long side <= max_size_test",
        "outputs": list(OUTPUTS), "thing_classes": list(THING_CLASSES),
        "score_thresh_test": float(cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST),
        "nms_thresh_test": float(cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST),
        "diagnosis_threshold": float(cfg.WSSDL.EVAL.SCORE_THRESH), "weights": cfg.MODEL.WEIGHTS,
        "torch": torch.__version__, "sample_detections": len(reference),
        "max_box_difference": box_diff, "max_score_difference": score_diff,
    }
    atomic_write_json(os.path.splitext(output_path)[0] + ".json", meta, indent=1)
    logger.info("Exported %s (%d detections on the sample; max box difference %.2g px)", output_path,
                len(reference), box_diff)
    return meta
