#!/usr/bin/env python
"""CPU cost of detectors that differ in their backbone: training seconds per iteration and inference images/s.

    python tools/benchmark_backbones.py configs/BUSI/strong_only_r18.yaml configs/BUSI/strong_only.yaml \\
        --train-iters 12 --images 24 --size 384

Every config gets the same images at the same size (shortest edge ``--size``, from the first training dataset
of each config for training, ``DATASETS.TEST[0]`` for inference). The models take their steps in turn (A, B, A, B,
...), so load from other processes on a shared machine slows them alike. A training step is Detectron2's:
forward with losses, backward, SGD step with the config's LR schedule (warm-up), on a batch of ``SOLVER.IMS_PER_BATCH`` images. The first
``--warmup`` steps / images of each model are not counted; the median step time and mean images/s are reported.
Full-detector inference time depends on how many boxes pass the score threshold (post-processing), which for
briefly trained models varies from run to run; the backbone + FPN forward alone (batch 1) does not, so both
are reported, with the mean number of detections per image.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, DatasetMapper  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.solver import build_lr_scheduler, build_optimizer  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import wssdl_d2  # noqa: E402,F401  (registers backbones and datasets)
from wssdl_d2.config import add_wssdl_config  # noqa: E402
from wssdl_d2.data import default_dataset_root, register_datasets_under  # noqa: E402


def load_config(path, size, opts):
    cfg = get_cfg()
    add_wssdl_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts) + ["MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TRAIN", (size,), "INPUT.MIN_SIZE_TEST",
                                      size])
    register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
    return cfg


def strong_dicts(name, count):
    dicts = [d for d in DatasetCatalog.get(name) if d.get("supervision", "strong") == "strong" and d["annotations"]]
    if len(dicts) < count:
        raise ValueError(f"dataset {name}: {len(dicts)} images with boxes, {count} needed")
    return dicts[:count]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--train-iters", type=int, default=12)
    parser.add_argument("--images", type=int, default=24, help="inference images")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", type=int, default=384, help="shortest image edge for training and inference")
    parser.add_argument("--json", default="", help="also write the results here")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides for every config")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    runs = []
    for path in args.configs:
        cfg = load_config(path, args.size, args.opts)
        model = build_model(cfg)
        batch = cfg.SOLVER.IMS_PER_BATCH
        train_mapper, test_mapper = DatasetMapper(cfg, is_train=True), DatasetMapper(cfg, is_train=False)
        train = [train_mapper(d) for d in strong_dicts(cfg.DATASETS.TRAIN[0], batch)]
        test = [test_mapper(d) for d in DatasetCatalog.get(cfg.DATASETS.TEST[0])[:args.images]]
        optimizer = build_optimizer(cfg, model)
        runs.append({"config": path, "model": model, "optimizer": optimizer, "train": train,
                     "scheduler": build_lr_scheduler(cfg, optimizer),
                     "test": test, "step_s": [], "image_s": [], "backbone_s": [], "detections": [],
                     "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                     "params": sum(p.numel() for p in model.parameters())})

    with EventStorage(0):  # the models log training statistics into it
        for _ in range(args.train_iters):
            for run in runs:
                run["model"].train()
                start = time.perf_counter()
                losses = sum(run["model"](run["train"]).values())
                run["optimizer"].zero_grad()
                losses.backward()
                run["optimizer"].step()
                run["scheduler"].step()  # the config's warm-up, as in training
                run["step_s"].append(time.perf_counter() - start)
    with torch.no_grad():
        for i in range(len(runs[0]["test"])):
            for run in runs:
                run["model"].eval()
                start = time.perf_counter()
                output = run["model"]([run["test"][i]])[0]
                run["image_s"].append(time.perf_counter() - start)
                run["detections"].append(len(output["instances"]))
                images = run["model"].preprocess_image([run["test"][i]])
                start = time.perf_counter()
                run["model"].backbone(images.tensor)
                run["backbone_s"].append(time.perf_counter() - start)

    results = []
    for run in runs:
        steps, images, backbone = (run[key][args.warmup:] for key in ("step_s", "image_s", "backbone_s"))
        results.append({"config": run["config"], "params": run["params"], "trainable_params": run["trainable_params"],
                        "train_s_per_iter": statistics.median(steps), "train_iters": len(steps),
                        "images_per_iter": len(run["train"]), "inference_images_per_s": len(images) / sum(images),
                        "inference_images": len(images), "backbone_images_per_s": len(backbone) / sum(backbone),
                        "detections_per_image": statistics.mean(run["detections"][args.warmup:])})
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, size {args.size}")
    print("| config | params (trainable) | train s / iter | inference images / s (detections / image) | "
          "backbone + FPN images / s |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['config']} | {r['params'] / 1e6:.2f}M ({r['trainable_params'] / 1e6:.2f}M) | "
              f"{r['train_s_per_iter']:.2f} | {r['inference_images_per_s']:.2f} ({r['detections_per_image']:.0f}) | "
              f"{r['backbone_images_per_s']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
