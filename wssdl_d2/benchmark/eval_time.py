"""Time of an evaluation of one split, as ``tools/train_net.py --eval-only`` runs it: Detectron2's test loader
(DatasetMapper(cfg, False), DATALOADER.NUM_WORKERS), the model on one image per call, the CorLocEvaluator
(per-image outcomes, bootstrap confidence intervals, the JSON / CSV / PNG files into a temporary folder)."""
import contextlib
import gc
import logging
import tempfile
import time
from typing import Any, Dict

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog

from .timing import synchronize


@contextlib.contextmanager
def _quiet(name):
    """Silence logger ``name`` below WARNING (the evaluator's report tables) for the block."""
    log = logging.getLogger(name)
    level, propagate = log.level, log.propagate
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
        log.propagate = propagate


def evaluation_time(cfg: CfgNode, model: torch.nn.Module, dataset: str, max_images: int = 0) -> Dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (all images, or the first ``max_images`` when > 0) and time its parts.

    Returns {"dataset", "images", "split_images", "capped", "data_s" (waiting for the loader), "inference_s"
    (the model calls), "corloc_process_s" (CorLocEvaluator.process), "corloc_evaluate_s"
    (CorLocEvaluator.evaluate), "total_s", "inference_images_per_s", "corloc": CorLoc of the run (sanity only),
    and, when capped, "full_split_estimate_s": the per-image parts scaled to the whole split plus evaluate's
    time as measured}. All times in seconds."""
    from ..engine.trainer import WSSDLTrainer
    from ..evaluation.corloc_evaluator import CorLocEvaluator

    split_images = len(DatasetCatalog.get(dataset))
    times = {"data_s": 0.0, "inference_s": 0.0, "corloc_process_s": 0.0}
    device = cfg.MODEL.DEVICE
    model.eval()
    images = 0
    with tempfile.TemporaryDirectory() as out, _quiet("wssdl_d2.evaluation.corloc_evaluator"), torch.no_grad():
        evaluator = CorLocEvaluator.from_config(cfg, dataset, out)
        evaluator.reset()
        iterator = iter(WSSDLTrainer.build_test_loader(cfg, dataset))
        total_start = time.perf_counter()
        try:
            while not max_images or images < max_images:
                start = time.perf_counter()
                inputs = next(iterator, None)
                times["data_s"] += time.perf_counter() - start
                if inputs is None:
                    break
                synchronize(device)
                start = time.perf_counter()
                outputs = model(inputs)
                synchronize(device)
                times["inference_s"] += time.perf_counter() - start
                start = time.perf_counter()
                evaluator.process(inputs, outputs)
                times["corloc_process_s"] += time.perf_counter() - start
                images += len(inputs)
        finally:
            del iterator  # stops the loader's workers when the run is capped
            gc.collect()
        start = time.perf_counter()
        results = evaluator.evaluate()
        times["corloc_evaluate_s"] = time.perf_counter() - start
        times["total_s"] = time.perf_counter() - total_start
    result = {"dataset": dataset, "images": images, "split_images": split_images, "capped": images < split_images,
              **times, "inference_images_per_s": images / times["inference_s"] if times["inference_s"] else 0.0,
              "corloc": {k: float(v) for k, v in (results.get("corloc") or {}).items()
                         if isinstance(v, (int, float))}}
    if result["capped"] and images:
        per_image = (times["data_s"] + times["inference_s"] + times["corloc_process_s"]) / images
        result["full_split_estimate_s"] = per_image * split_images + times["corloc_evaluate_s"]
    return result
