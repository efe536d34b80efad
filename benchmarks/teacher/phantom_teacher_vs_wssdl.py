#!/usr/bin/env python
"""Short seeded phantom runs: the label-aware mean teacher (configs/Phantom/wssdl_teacher.yaml and its ablations)
against the paper's joint training (configs/Phantom/wssdl.yaml), under one recipe.

The data and the small model are those of tests/test_joint_vs_strong.py: a 96x128 phantom (20 normal, 60 benign,
60 malignant images, 30% held out), strong boxes for 12 benign / normal images only, every malignant training image
weak, so the malignant class can only be learnt from image labels. Every row trains ITERS iterations from the same
seed with the same overrides; the teacher rows start their teacher at ITERS / 2. Scored on the val images: CorLoc,
CorLoc-malignant, AP50 and the malignant val images whose top detection is malignant (of 18); teacher rows report
the teacher (EVAL_WITH) and the student.

    OMP_NUM_THREADS=1 python benchmarks/teacher/phantom_teacher_vs_wssdl.py --out output/teacher_phantom \
        --seeds 0 1 2 --rows wssdl wssdl_teacher
"""
import argparse
import copy
import json
import os
import time

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.env import seed_all_rng

from wssdl_d2.config import merge_config
from wssdl_d2.data import register_datasets_under
from wssdl_d2.data.phantom import write_phantom_dataset
from wssdl_d2.data.prepare import prepare_pool
from wssdl_d2.engine import WSSDLTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEIGHT, WIDTH = 96, 128


def overrides(iters, seed):
    return {
        "INPUT.MIN_SIZE_TRAIN": (HEIGHT,), "INPUT.MAX_SIZE_TRAIN": WIDTH, "INPUT.MIN_SIZE_TEST": HEIGHT,
        "INPUT.MAX_SIZE_TEST": WIDTH, "MODEL.ANCHOR_GENERATOR.SIZES": [[24], [48], [96], [192]],
        "MODEL.FPN.OUT_CHANNELS": 64, "MODEL.ROI_BOX_HEAD.FC_DIM": 128, "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": True,
        "MODEL.RPN.POST_NMS_TOPK_TRAIN": 100, "MODEL.RPN.POST_NMS_TOPK_TEST": 32,
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 64, "SOLVER.MAX_ITER": iters, "SOLVER.WARMUP_ITERS": 20,
        "SOLVER.STEPS": (int(iters * 0.8),), "SOLVER.CHECKPOINT_PERIOD": 100000, "DATALOADER.NUM_WORKERS": 0,
        "SEED": seed, "WSSDL.EVAL.PLOTS": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 10, "DATASETS.TEST": ("jvs_val",),
        "DATASETS.TRAIN": ("jvs_benign_strong", "jvs_weak"), "WSSDL.MIL.MOI_BENIGN": "most_abnormal",
        "WSSDL.MIL.MOI_MALIGNANT": "most_abnormal", "WSSDL.MIL.ALPHA.STEP": iters // 2,
        "WSSDL.TEACHER.BURN_IN": iters // 2, "WSSDL.TEACHER.ADAPTIVE.WINDOW": 100,
    }


def make_data(base):
    root = os.path.join(base, "jvs")
    if not os.path.isfile(os.path.join(root, "val.json")):
        write_phantom_dataset(os.path.join(root, "images"), (20, 60, 60), HEIGHT, WIDTH, seed=0, second_lesion_prob=0.1)
        prepare_pool(os.path.join(root, "images"), root, strong_fractions=(0.2,), val_fraction=0.3, seed=0, name="jvs",
                     progress=False, log=lambda *a: None)
    register_datasets_under(base)
    strong = DatasetCatalog.get("jvs_train_strong_20")
    weak = DatasetCatalog.get("jvs_train_weak_20") + [
        {**copy.deepcopy(d), "supervision": "weak", "annotations": []} for d in strong if d["image_label"] == 2]
    strong = [d for d in strong if d["image_label"] != 2]
    for name, dicts in (("jvs_benign_strong", strong), ("jvs_weak", weak)):
        DatasetCatalog.register(name, lambda dicts=dicts: copy.deepcopy(dicts))
        MetadataCatalog.get(name).set(thing_classes=["benign", "malignant"])


def malignant_top1(cfg, model):
    hits = 0
    model.eval()
    with torch.no_grad():
        for inputs in WSSDLTrainer.build_test_loader(cfg, "jvs_val"):
            for x, out in zip(inputs, model(inputs)):
                found = out["instances"]
                if x["image_label"] == 2 and len(found):
                    hits += int(found.pred_classes[found.scores.argmax()]) == 1
    return hits


def run(row, seed, iters, out, opts=(), tag=""):
    cfg = merge_config(os.path.join(ROOT, "configs", "Phantom", f"{row}.yaml"))
    for key, value in overrides(iters, seed).items():
        cfg.merge_from_list([key, value])
    cfg.merge_from_list(list(opts))
    row = row + tag
    cfg.OUTPUT_DIR = os.path.join(out, f"{row}_seed{seed}")
    torch.manual_seed(seed)
    seed_all_rng(seed)
    start = time.perf_counter()
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    seconds = time.perf_counter() - start
    res = trainer._last_eval_results
    teacher = getattr(trainer._trainer, "teacher", None)
    model = teacher.model if teacher is not None else trainer.model
    rec = {"row": row, "seed": seed, "opts": list(opts), "evaluated": "teacher" if teacher is not None else "student",
           "CorLoc": res["corloc"]["CorLoc"], "CorLoc-malignant": res["corloc"]["CorLoc-malignant"],
           "AP50": res["bbox"]["AP50"], "malignant_top1": malignant_top1(cfg, model), "train_seconds": seconds}
    if teacher is not None:
        latest = trainer.storage.latest()
        rec.update({"student_CorLoc": latest["student/corloc/CorLoc"][0],
                    "student_CorLoc-malignant": latest["student/corloc/CorLoc-malignant"][0],
                    "student_AP50": latest["student/bbox/AP50"][0],
                    "student_malignant_top1": malignant_top1(cfg, trainer.model)})
        history = trainer.storage.history
        for key in ("teacher/label_agreement", "teacher/pseudo_boxes_benign", "teacher/pseudo_boxes_malignant",
                    "teacher/trusted_images", "teacher/kept_best", "teacher/threshold_benign",
                    "teacher/threshold_malignant", "teacher/off_label_boxes"):
            if key in trainer.storage._history:
                rec["last50_" + key.split("/")[1]] = history(key).avg(50)
    return rec


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=["wssdl", "wssdl_teacher"])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--tag", default="", help="appended to the row names (runs with --opts)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    make_data(os.path.join(args.out, "data"))
    path = os.path.join(args.out, "results.jsonl")  # one line per finished run; a restart skips those
    done = []
    if os.path.isfile(path):
        with open(path) as f:
            done = [json.loads(line) for line in f if line.strip()]
    for seed in args.seeds:
        for row in args.rows:
            if any(d["row"] == row + args.tag and int(d["seed"]) == seed for d in done):
                continue
            rec = run(row, seed, args.iters, args.out, args.opts, args.tag)
            print(json.dumps(rec), flush=True)
            with open(path, "a") as f:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
