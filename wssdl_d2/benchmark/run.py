"""The benchmark's whole run: every part, one JSON result (the command line: :mod:`wssdl_d2.cli.benchmark`).

Parts (``--parts``, default all):

- ``train``: training step (forward, backward, the config's optimizer at a small LR) of the joint and the plain
  model on the same images, interleaved after warm-up; median and p90 seconds, ratio joint / plain of medians.
- ``infer``: single-image inference (model.eval(), as the evaluation loop), interleaved; median and p90
  latency, images/s (= images / summed time), ratio joint / plain of median latencies.
- ``memory``: peak memory of a training phase and of an inference phase of each model, each in a fresh
  process (:mod:`.memory`).
- ``loader``: images/s of the trainer's training loader alone, against the images/s the joint training step
  consumes (needs ``train``).
- ``eval``: inference + CorLocEvaluator time of the joint model on the evaluation split (:mod:`.eval_time`).
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from typing import Any, Dict

import torch

PARTS = ("train", "infer", "memory", "loader", "eval")


def _settings(args, cfg):
    return {
        "config": args.config_file, "opts": list(args.opts), "dataset": args.dataset,
        "eval_dataset": args.eval_dataset, "parts": args.parts, "device": cfg.MODEL.DEVICE,
        "threads": torch.get_num_threads(), "reps": args.reps, "warmup": args.warmup,
        "infer_images": args.infer_images, "memory_steps": args.memory_steps, "loader_batches": args.loader_batches,
        "eval_images": args.eval_images, "weights": cfg.MODEL.WEIGHTS or "(initialisation)",
        "images_per_step": {"strong": int(cfg.WSSDL.STRONG_PER_BATCH), "weak": int(cfg.WSSDL.WEAK_PER_BATCH)},
        "mil_max_proposals": int(cfg.WSSDL.MIL.MAX_PROPOSALS), "post_nms_topk_train": cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN,
        "num_workers": int(cfg.DATALOADER.NUM_WORKERS),
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "gpu": torch.cuda.get_device_name() if cfg.MODEL.DEVICE.startswith("cuda") else None,
                    "torch": torch.__version__, "python": platform.python_version()},
    }


def _ratio(times):
    return times["joint"]["median_s"] / times["plain"]["median_s"]


def _train(args, cfg, pair, inputs, result):
    from . import models, timing

    optimizers = {"joint": models.build_optimizer(cfg, pair["joint"]),
                  "plain": models.build_optimizer(models.plain_cfg(cfg), pair["plain"])}
    train = timing.time_training(pair, optimizers, inputs["batches"], args.reps, args.warmup, cfg.MODEL.DEVICE)
    out = {name: timing.summarize(t) for name, t in train.items()}
    # the optimizer steps moved the weights apart: the plain model gets the joint one's again for what follows
    pair["plain"].load_state_dict(pair["joint"].state_dict())
    return {**out, "ratio": _ratio(out)}


def _infer(args, cfg, pair, inputs, result):
    from . import timing

    test = timing.time_inference(pair, inputs["images"], args.infer_images, args.warmup, cfg.MODEL.DEVICE)
    out = {name: {**timing.summarize(t), "images_per_s": len(t) / sum(t)} for name, t in test.items()}
    return {**out, "ratio": _ratio(out)}


def _loader(args, cfg, pair, inputs, result):
    from .loader import loader_throughput

    consumed = len(inputs["batches"]["joint"]) / result["train_step"]["joint"]["median_s"]
    delivered = loader_throughput(cfg, args.loader_batches)
    return {**delivered, "training_consumes_images_per_s": consumed, "headroom": delivered["images_per_s"] / consumed}


def _eval(args, cfg, pair, inputs, result):
    from .eval_time import evaluation_time

    return evaluation_time(cfg, pair["joint"], args.eval_dataset, args.eval_images)


def _memory(args, cfg, pair, inputs, result):
    from . import memory

    with tempfile.TemporaryDirectory() as folder:
        memory.write_payload(folder, cfg, pair["joint"].state_dict(), inputs["batches"], inputs["images"])
        out = {"method": memory.method(cfg.MODEL.DEVICE),
               **memory.measure_all(folder, args.memory_steps, args.threads, args.memory_jobs)}
    for phase in memory.PHASES:
        m = out[phase]
        m["peak_ratio"] = m["joint"]["peak_bytes"] / m["plain"]["peak_bytes"]
        m["growth_ratio"] = m["joint"]["growth_bytes"] / max(m["plain"]["growth_bytes"], 1)
    return out


# part -> (result key, function(args, cfg, pair, inputs, result so far)), in the order they run
_RUNNERS = {"train": ("train_step", _train), "infer": ("inference", _infer), "loader": ("data_loading", _loader),
            "eval": ("evaluation", _eval), "memory": ("memory", _memory)}


def run_benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the parts ``args.parts`` (from :func:`wssdl_d2.cli.benchmark.parse_args`); returns the JSON-ready result dict, with the
    wall seconds of each part under ``part_wall_s``."""
    from ..data import default_dataset_root, register_datasets_under
    from . import models

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = models.load_cfg(args.config_file, args.opts, args.device)
    register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
    args.dataset = args.dataset or cfg.DATASETS.TRAIN[0]
    args.eval_dataset = args.eval_dataset or (cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "")
    result = {"settings": _settings(args, cfg), "load_average_start": list(os.getloadavg()), "part_wall_s": {}}
    started = time.perf_counter()
    pair = models.build_pair(cfg)
    inputs = {"batches": models.training_batches(cfg, args.dataset),
              "images": models.test_images(cfg, args.dataset, args.distinct_images)}
    for part, (key, runner) in _RUNNERS.items():
        if part not in args.parts or (part == "eval" and not args.eval_dataset):
            continue
        print(f"[benchmark] {part} ...", file=sys.stderr, flush=True)
        part_start = time.perf_counter()
        result[key] = runner(args, cfg, pair, inputs, result)
        result["part_wall_s"][part] = time.perf_counter() - part_start
        print(f"[benchmark] {part} done in {result['part_wall_s'][part]:.0f} s", file=sys.stderr, flush=True)
    result["wall_s"] = time.perf_counter() - started
    result["load_average_end"] = list(os.getloadavg())
    return result
