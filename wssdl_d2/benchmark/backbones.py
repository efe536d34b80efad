"""CPU cost of detectors that differ in their backbone (``tools/benchmark_backbones.py``): training seconds per
iteration and inference images/s, the models taking their steps in turn (:func:`.timing.interleaved`) so that load
from other processes on a shared machine slows them alike.

Every config gets the same images at the same size (shortest edge ``size``; the first images with boxes of its
first training dataset for training, ``DATASETS.TEST[0]`` for inference). A training step is Detectron2's:
forward with losses, backward, the config's optimizer and LR schedule (warm-up included) on a batch of
``SOLVER.IMS_PER_BATCH`` images. Full-detector inference time depends on how many boxes pass the score threshold
(post-processing), which for briefly trained models varies from run to run; the backbone + FPN forward alone
(batch 1) does not, so both are measured, with the mean number of detections per image.
"""
import statistics
from typing import Any, Dict, Iterable, List, Sequence

import torch
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler, build_optimizer
from detectron2.utils.events import EventStorage

from ..config import load_config
from . import timing

DEVICE = "cpu"


def strong_dicts(name: str, count: int) -> List[Dict[str, Any]]:
    """The first ``count`` images of dataset ``name`` with boxes drawn by a person; ValueError when too few."""
    dicts = [d for d in DatasetCatalog.get(name) if d.get("supervision", "strong") == "strong" and d["annotations"]]
    if len(dicts) < count:
        raise ValueError(f"dataset {name}: {len(dicts)} images with boxes, {count} needed")
    return dicts[:count]


def _prepare(config_file: str, size: int, images: int, opts: Iterable) -> Dict[str, Any]:
    cfg = load_config(config_file, opts, ["INPUT.MIN_SIZE_TRAIN", (size,), "INPUT.MIN_SIZE_TEST", size],
                      device=DEVICE)
    model = build_model(cfg)
    train_mapper, test_mapper = DatasetMapper(cfg, is_train=True), DatasetMapper(cfg, is_train=False)
    optimizer = build_optimizer(cfg, model)
    return {"config": config_file, "model": model, "optimizer": optimizer,
            "scheduler": build_lr_scheduler(cfg, optimizer),
            "train": [train_mapper(d) for d in strong_dicts(cfg.DATASETS.TRAIN[0], cfg.SOLVER.IMS_PER_BATCH)],
            "test": [test_mapper(d) for d in DatasetCatalog.get(cfg.DATASETS.TEST[0])[:images]],
            "calls": 0, "backbone_s": [], "detections": [],
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "params": sum(p.numel() for p in model.parameters())}


def _train_call(run: Dict[str, Any]) -> float:
    seconds = timing.train_step(run["model"], run["optimizer"], run["train"], DEVICE)
    run["scheduler"].step()  # the config's warm-up, as in training
    return seconds


def _inference_call(run: Dict[str, Any]) -> float:
    inputs = run["test"][run["calls"]]
    run["calls"] += 1
    seconds, output = timing.timed(lambda: run["model"]([inputs])[0], DEVICE)
    run["detections"].append(len(output["instances"]))
    images = run["model"].preprocess_image([inputs])
    run["backbone_s"].append(timing.timed(lambda: run["model"].backbone(images.tensor), DEVICE)[0])
    return seconds


def benchmark_backbones(config_files: Sequence[str], train_iters: int = 12, images: int = 24, warmup: int = 2,
                        size: int = 384, opts: Iterable = ()) -> List[Dict[str, Any]]:
    """Time training and inference of the detector of each config (``opts``: KEY VALUE overrides for all).

    ``train_iters`` training steps and ``images`` inference images per model, the first ``warmup`` of each not
    counted. Returns one dict per config: {"config", "params", "trainable_params", "train_s_per_iter" (median
    seconds), "train_iters" (counted), "images_per_iter", "inference_images_per_s" (counted images / their
    summed seconds, full detector), "inference_images", "backbone_images_per_s" (backbone + FPN forward only),
    "detections_per_image" (mean)}."""
    if train_iters <= warmup or images <= warmup:
        raise ValueError(f"--train-iters ({train_iters}) and --images ({images}) must exceed --warmup ({warmup})")
    torch.manual_seed(0)
    opts = list(opts)
    runs = [_prepare(path, size, images, opts) for path in config_files]
    for run in runs:
        run["model"].train()
    with EventStorage(0):  # the models log training statistics into it
        steps = timing.interleaved({k: (lambda r=run: _train_call(r)) for k, run in enumerate(runs)},
                                   train_iters - warmup, warmup)
    for run in runs:
        run["model"].eval()
    with torch.no_grad():
        counted = min(len(run["test"]) for run in runs) - warmup
        if counted < 1:
            raise ValueError(f"the test sets hold {counted + warmup} images, more than --warmup ({warmup}) needed")
        inference = timing.interleaved({k: (lambda r=run: _inference_call(r)) for k, run in enumerate(runs)},
                                       counted, warmup)
    results = []
    for k, run in enumerate(runs):
        backbone = run["backbone_s"][warmup:]
        results.append({"config": run["config"], "params": run["params"], "trainable_params": run["trainable_params"],
                        "train_s_per_iter": statistics.median(steps[k]), "train_iters": len(steps[k]),
                        "images_per_iter": len(run["train"]),
                        "inference_images_per_s": len(inference[k]) / sum(inference[k]),
                        "inference_images": len(inference[k]), "backbone_images_per_s": len(backbone) / sum(backbone),
                        "detections_per_image": statistics.mean(run["detections"][warmup:])})
    return results


def markdown(results: Sequence[Dict[str, Any]]) -> str:
    """The Markdown table of :func:`benchmark_backbones`'s results: one row per config."""
    lines = ["| config | params (trainable) | train s / iter | inference images / s (detections / image) | "
             "backbone + FPN images / s |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['config']} | {r['params'] / 1e6:.2f}M ({r['trainable_params'] / 1e6:.2f}M) | "
                     f"{r['train_s_per_iter']:.2f} | {r['inference_images_per_s']:.2f} "
                     f"({r['detections_per_image']:.0f}) | {r['backbone_images_per_s']:.2f} |")
    return "\n".join(lines)
