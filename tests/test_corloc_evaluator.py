"""CorLocEvaluator on the tiny phantom: predictions built from the ground truth, and a real (untrained) model
evaluated through the trainer's test path."""
import json
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances

from wssdl_d2.evaluation import CorLocEvaluator, build_evaluators
from wssdl_d2.evaluation.corloc_evaluator import ground_truth
from wssdl_d2.evaluation.results_io import read_per_image, read_report

DATASET = "testphantom_val"


def _instances(record, boxes, scores, classes):
    inst = Instances((record["height"], record["width"]))
    inst.pred_boxes = Boxes(torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)))
    inst.scores = torch.as_tensor(np.asarray(scores, np.float32))
    inst.pred_classes = torch.as_tensor(np.asarray(classes, np.int64))
    return inst


def _run(evaluator, predict):
    evaluator.reset()
    for record in DatasetCatalog.get(DATASET):
        boxes, scores, classes = predict(record)
        evaluator.process([{"image_id": record["image_id"], "file_name": record["file_name"]}],
                          [{"instances": _instances(record, boxes, scores, classes)}])
    return evaluator.evaluate()


def _perfect(record):
    """Every ground-truth box found with score 0.9 and the right class; normal images get nothing."""
    gt_boxes, gt_classes = ground_truth(record)
    return gt_boxes, np.full(len(gt_boxes), 0.9), gt_classes


def test_perfect_predictions(phantom_root, tmp_path):
    records = DatasetCatalog.get(DATASET)
    labels = np.array([r["image_label"] for r in records])
    assert {0, 1, 2} <= set(labels), "the fixture's val split should hold all three labels"
    out = tmp_path / "inference"
    results = _run(CorLocEvaluator(DATASET, str(out), bootstrap_samples=300), _perfect)
    flat = results["corloc"]
    assert flat["CorLoc"] == 100.0 and flat["CorLoc_top1"] == 100.0
    assert flat["CorLoc_lo"] == flat["CorLoc_hi"] == 100.0
    assert flat["FP_per_normal"] == 0.0 and flat["AUC_BvsM"] == 1.0 and flat["Accuracy"] == 100.0
    assert flat["num_images"] == len(records)
    assert all(isinstance(v, float) for v in flat.values())

    report = read_report(str(out))
    assert report["dataset"] == DATASET and report["counts"]["normal"] == int(np.sum(labels == 0))
    columns = read_per_image(str(out))
    assert len(columns["file_name"]) == len(records) and columns["hit_any"][labels > 0].all()
    detections = json.loads((out / "corloc_detections.json").read_text())
    assert len(detections) == len(records) and "gt_boxes" in detections[0]
    for name in ("corloc_froc.png", "corloc_bars.png", "corloc_roc.png"):
        assert (out / name).stat().st_size > 1000


def test_shifted_and_mislabelled_predictions(phantom_root):
    """Boxes shifted by their own width miss (IoU 0); the malignant class everywhere misses benign masses and
    puts one false positive (score 0.8) on every normal image."""
    def shifted(record):
        boxes, scores, classes = _perfect(record)
        boxes = boxes + np.c_[boxes[:, 2] - boxes[:, 0], np.zeros(len(boxes)), boxes[:, 2] - boxes[:, 0],
                              np.zeros(len(boxes))]
        return boxes, scores, classes

    def all_malignant(record):
        boxes, _, _ = _perfect(record)
        if record["image_label"] == 0:
            boxes = np.array([[1.0, 1.0, 20.0, 20.0]])
        return boxes, np.full(len(boxes), 0.8), np.ones(len(boxes), np.int64)

    evaluator = CorLocEvaluator(DATASET, None, bootstrap_samples=200)
    assert _run(evaluator, shifted)["corloc"]["CorLoc"] == 0.0
    flat = _run(evaluator, all_malignant)["corloc"]
    assert flat["CorLoc-benign"] == 0.0 and flat["CorLoc-malignant"] == 100.0 and flat["FP_per_normal"] == 1.0
    labels = np.array([r["image_label"] for r in DatasetCatalog.get(DATASET)])
    expected = 100.0 * np.mean(labels[labels > 0] == 2)
    assert flat["CorLoc"] == pytest.approx(expected)


def test_unknown_image_is_an_error(phantom_root):
    evaluator = CorLocEvaluator(DATASET, None)
    record = DatasetCatalog.get(DATASET)[0]
    evaluator.process([{"image_id": -7}], [{"instances": _instances(record, [], [], [])}])
    with pytest.raises(KeyError, match="not in dataset testphantom_val"):
        evaluator.evaluate()


def test_untrained_model_through_the_trainer(tiny_cfg):
    """The wiring: build_evaluators adds the evaluator, WSSDLTrainer.test runs it and writes the files."""
    from wssdl_d2.engine import WSSDLTrainer

    cfg = tiny_cfg(**{"WSSDL.EVAL.COCO": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 200, "WSSDL.EVAL.PLOTS": False})
    assert [type(e).__name__ for e in build_evaluators(cfg, DATASET)] == ["CorLocEvaluator"]
    model = WSSDLTrainer.build_model(cfg)
    results = WSSDLTrainer.test(cfg, model)
    flat = results["corloc"]
    assert 0.0 <= flat["CorLoc"] <= 100.0 and flat["num_images"] == len(DatasetCatalog.get(DATASET))
    folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    assert set(os.listdir(folder)) >= {"corloc.json", "corloc_per_image.csv", "corloc_detections.json"}


def test_metrics_reach_the_event_storage_during_training(tiny_cfg):
    """Periodic evaluation puts the CorLoc numbers into the event storage (TensorBoard, metrics.json)."""
    from wssdl_d2.engine import WSSDLTrainer

    cfg = tiny_cfg(**{"WSSDL.EVAL.COCO": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 100, "WSSDL.EVAL.PLOTS": False,
                      "SOLVER.MAX_ITER": 2, "TEST.EVAL_PERIOD": 2})
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    history = trainer.storage.histories()
    assert {"corloc/CorLoc", "corloc/CorLoc_lo", "corloc/CorLoc_top1-malignant", "corloc/AUC_BvsM"} <= set(history)
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json")) as f:
        assert any("corloc/CorLoc" in json.loads(line) for line in f if line.strip())
