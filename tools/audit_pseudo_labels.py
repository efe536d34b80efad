#!/usr/bin/env python
"""Audit the pseudo boxes of a self-training round against the true boxes, where they are known.

    python tools/audit_pseudo_labels.py output/busi/selftrain_50/round_1/datasets/train_strong.json \\
        --truth datasets/busi/train_all.json [--iou 0.5] [--csv audit.csv]

For every image with ``supervision: "pseudo"`` in the round's dataset file, the best IoU of its pseudo box(es) with
the true boxes of the same image (matched by ``file_name``) in ``--truth`` (a dataset file in which those images
have their boxes, e.g. the prepared ``train_all.json``). Prints how many pseudo boxes hit a true box (IoU >
``--iou``), the median IoU, and the share whose class equals the true box's, overall and per pseudo score
quartile; ``--csv`` writes one row per pseudo box.
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from detectron2.structures import Boxes, BoxMode, pairwise_iou  # noqa: E402

from wssdl_d2.data.wssdl_json import load_wssdl_json  # noqa: E402
from wssdl_d2.utils.atomic import atomic_open  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("round_file", help="a self-training round's dataset file (round_<k>/datasets/train_strong.json)")
    parser.add_argument("--truth", required=True, help="dataset file with the true boxes of the same images")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU above which a pseudo box is right (default 0.5)")
    parser.add_argument("--csv", help="write one row per pseudo box here")
    return parser.parse_args(argv)


def audit(round_dicts, truth_dicts, iou_thresh=0.5):
    """Rows (file_name, score, class, true class, IoU, hit) for every pseudo box; ``hit`` = IoU > ``iou_thresh``
    with a true box of the image. Raises ValueError naming the images that ``truth_dicts`` lacks."""
    truth = {d["file_name"]: d for d in truth_dicts}
    pseudo = [d for d in round_dicts if d.get("supervision") == "pseudo"]
    missing = [d["file_name"] for d in pseudo if d["file_name"] not in truth]
    if missing:
        raise ValueError(f"{len(missing)} pseudo-labelled images are not in the truth file, e.g. {missing[:3]}")
    def xyxy(ann):
        return BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYXY_ABS), BoxMode.XYXY_ABS)

    rows = []
    for d in pseudo:
        true = truth[d["file_name"]].get("annotations", [])
        true_boxes = Boxes(np.asarray([xyxy(a) for a in true], dtype=np.float32).reshape(-1, 4))
        for ann in d.get("annotations", []):
            box = Boxes(np.asarray([xyxy(ann)], dtype=np.float32))
            ious = pairwise_iou(box, true_boxes)[0].numpy() if len(true_boxes) else np.zeros(0)
            best = int(np.argmax(ious)) if ious.size else -1
            iou = float(ious[best]) if ious.size else 0.0
            rows.append({"file_name": d["file_name"], "score": d.get("pseudo_score", ann.get("score")),
                         "class": ann["category_id"], "true_class": true[best]["category_id"] if best >= 0 else "",
                         "iou": iou, "hit": iou > iou_thresh})
    return rows


def summary(rows):
    """Text lines: hits, median IoU, class agreement; overall and per score quartile (highest first)."""
    def line(name, part):
        if not part:
            return f"{name}: no pseudo boxes"
        iou = np.asarray([r["iou"] for r in part])
        same = np.mean([r["class"] == r["true_class"] for r in part])
        return (f"{name}: {len(part)} pseudo boxes, {100 * np.mean([r['hit'] for r in part]):.1f}% hit a true box, "
                f"median IoU {np.median(iou):.2f}, class agrees with the true box {100 * same:.1f}%")
    lines = [line("all", rows)]
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: -float(r["score"]))
    for q, part in enumerate(np.array_split(np.arange(len(scored)), 4)):
        if len(part):
            chunk = [scored[i] for i in part]
            lines.append(line(f"score quartile {q + 1} ({float(chunk[-1]['score']):.3f}-{float(chunk[0]['score']):.3f})",
                              chunk))
    return lines


def main(argv=None):
    args = parse_args(argv)
    for path in (args.round_file, args.truth):
        if not os.path.isfile(path):
            sys.exit(f"error: {path}: file not found")
    image_root = os.path.dirname(os.path.abspath(args.truth))
    rows = audit(load_wssdl_json(args.round_file, image_root), load_wssdl_json(args.truth, image_root), args.iou)
    print("\n".join(summary(rows)))
    if args.csv:
        with atomic_open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["file_name", "score", "class", "true_class", "iou", "hit"])
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
