#!/usr/bin/env python
"""Speed of the joint method against Detectron2's plain Faster R-CNN, side by side in one process.

Two models with the same backbone, heads and weights are built from one config: the joint model
(WSSDLRCNN + StrongOnlyRPN + MILROIHeads) and the plain one (GeneralizedRCNN + RPN + StandardROIHeads).

- Training step (forward, backward, SGD step) on the same images: the joint model gets STRONG_PER_BATCH strong
  + WEAK_PER_BATCH weak images (the weak ones without their boxes), the plain model the same images, all with
  boxes. Repetitions are interleaved (joint, plain, plain, joint, ...) after warm-up; the median is reported.
- Inference (model.eval(), one image per call, as Detectron2's evaluation loop): images per second of both.

    python tools/benchmark_speed.py --config-file configs/Phantom/wssdl.yaml --dataset phantom_train_all \
        --reps 20 --threads 1 --out speed.json

Prints a markdown table (and writes it with the settings to --out as JSON).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wssdl_d2  # noqa: E402,F401  (registers the project's components)
import torch  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, DatasetMapper  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from wssdl_d2.data import default_dataset_root, register_datasets_under  # noqa: E402
from wssdl_d2.data.mapper import WSSDLDatasetMapper  # noqa: E402

PLAIN = ["MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "MODEL.PROPOSAL_GENERATOR.NAME", "RPN",
         "MODEL.ROI_HEADS.NAME", "StandardROIHeads"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", default="configs/Phantom/wssdl.yaml")
    parser.add_argument("--dataset", default="phantom_train_all", help="a registered dataset whose images have boxes")
    parser.add_argument("--reps", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--infer-images", type=int, default=20, help="timed inference calls per model")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def build_cfg(args, plain):
    cfg = get_cfg()
    wssdl_d2.add_wssdl_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if plain:
        cfg.merge_from_list(PLAIN)
    wssdl_d2.config.resolve_device(cfg)
    return cfg


def make_batches(cfg, dataset):
    """(joint batch, plain batch): the same mapped images; in the joint batch the last WEAK_PER_BATCH are weak."""
    strong, weak = cfg.WSSDL.STRONG_PER_BATCH, cfg.WSSDL.WEAK_PER_BATCH
    dicts = [d for d in DatasetCatalog.get(dataset) if d.get("annotations")][: strong + weak]
    if len(dicts) < strong + weak:
        raise SystemExit(f"{dataset}: needs {strong + weak} images with boxes, has {len(dicts)}")
    torch.manual_seed(0)
    mapper = WSSDLDatasetMapper(cfg, is_train=True)
    plain = [mapper({**d, "supervision": "strong"}) for d in dicts]
    joint = [dict(x) for x in plain]
    for x in joint[strong:]:
        x["supervision"] = "weak"
        x["instances"] = x["instances"][:0]
    return joint, plain


def train_step(model, optimizer, batch):
    start = time.perf_counter()
    losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def infer(model, image):
    start = time.perf_counter()
    model([{"image": image, "height": image.shape[1], "width": image.shape[2]}])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(runs, reps, warmup):
    """Time each callable in ``runs`` (name -> f() returning seconds) ``reps`` times after ``warmup`` calls,
    alternating the order each repetition. Returns name -> list of seconds."""
    for _ in range(warmup):
        for f in runs.values():
            f()
    times = {name: [] for name in runs}
    names = list(runs)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            times[name].append(runs[name]())
    return times


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    register_datasets_under(default_dataset_root())
    cfg_joint, cfg_plain = build_cfg(args, plain=False), build_cfg(args, plain=True)
    joint, plain = build_model(cfg_joint), build_model(cfg_plain)
    plain.load_state_dict(joint.state_dict())
    joint.roi_heads.mil_alpha = 1.0
    joint_batch, plain_batch = make_batches(cfg_joint, args.dataset)
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
                  for name, m in (("joint", joint), ("plain", plain))}
    joint.train(), plain.train()
    with EventStorage():
        train = interleaved({"joint": lambda: train_step(joint, optimizers["joint"], joint_batch),
                             "plain": lambda: train_step(plain, optimizers["plain"], plain_batch)},
                            args.reps, args.warmup)
    joint.eval(), plain.eval()
    images = [x["image"] for x in plain_batch]
    calls = {"joint": iter(range(10 ** 9)), "plain": iter(range(10 ** 9))}
    test = interleaved({name: (lambda m=m, n=name: infer(m, images[next(calls[n]) % len(images)]))
                        for name, m in (("joint", joint), ("plain", plain))}, args.infer_images, args.warmup)

    step = {k: statistics.median(v) for k, v in train.items()}
    ips = {k: 1.0 / statistics.median(v) for k, v in test.items()}
    result = {
        "config": args.config_file, "dataset": args.dataset, "opts": args.opts, "reps": args.reps,
        "infer_images": args.infer_images, "threads": torch.get_num_threads(), "device": cfg_joint.MODEL.DEVICE,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
        "images_per_step": {"strong": cfg_joint.WSSDL.STRONG_PER_BATCH, "weak": cfg_joint.WSSDL.WEAK_PER_BATCH},
        "mil_max_proposals": cfg_joint.WSSDL.MIL.MAX_PROPOSALS,
        "post_nms_topk_train": cfg_joint.MODEL.RPN.POST_NMS_TOPK_TRAIN,
        "train_step_s": step, "train_step_ratio": step["joint"] / step["plain"],
        "infer_images_per_s": ips, "infer_time_ratio": ips["plain"] / ips["joint"],
    }
    s, w = cfg_joint.WSSDL.STRONG_PER_BATCH, cfg_joint.WSSDL.WEAK_PER_BATCH
    print(f"| measure | plain Faster R-CNN | joint (combined) | ratio joint / plain |\n|---|---|---|---|\n"
          f"| training step, {s} + {w} images (median s) | {step['plain']:.3f} | {step['joint']:.3f} | "
          f"{result['train_step_ratio']:.3f}x |\n"
          f"| inference (images / s) | {ips['plain']:.2f} | {ips['joint']:.2f} | "
          f"{result['infer_time_ratio']:.3f}x (time) |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
