"""Acquisition scores prefer the image built to be uncertain; suggestions are written as a CSV and a contact sheet
(the package functions, and tools/suggest_annotations.py)."""
import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from wssdl_d2.active.scoring import ACQUISITIONS, acquisition_scores, rank_images
from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.inference.analysis import ImageAnalysis
from wssdl_d2.inference.predictor import Prediction
from wssdl_d2.inference.diagnosis import diagnose

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("one_thread")

BOX = [10.0, 10.0, 40.0, 40.0]


def analysis(name, label, moi_probs, detections):
    """detections: [(class, score)], sorted here by score."""
    detections = sorted(detections, key=lambda d: -d[1])
    scores = np.asarray([s for _, s in detections], np.float32)
    classes = np.asarray([c for c, _ in detections], np.int64)
    pred = Prediction(np.asarray([BOX] * len(detections), np.float32).reshape(-1, 4), scores, classes,
                      diagnose(scores, classes), 64, 64)
    return ImageAnalysis(name, label, pred, np.asarray(BOX, np.float32), np.asarray(moi_probs, float),
                         "most_malignant", 10)


def pool():
    return [
        analysis("confident_benign", 1, [0.93, 0.04, 0.03], [(0, 0.95)]),
        analysis("confident_malignant", 2, [0.02, 0.95, 0.03], [(1, 0.9), (0, 0.1)]),
        analysis("uncertain", 1, [0.34, 0.33, 0.33], [(0, 0.4), (1, 0.45)]),
    ]


@pytest.mark.parametrize("method", [m for m in ACQUISITIONS if m != "random"])
def test_every_acquisition_prefers_the_uncertain_image(method):
    rows = rank_images(pool(), method)
    assert rows[0]["file_name"] == "uncertain", rows
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)


def test_component_values_and_the_wrong_class_image():
    a = pool()
    assert acquisition_scores(a[:1], "moi_uncertainty")[0] == pytest.approx(0.07)
    assert acquisition_scores(a[2:], "moi_entropy")[0] == pytest.approx(1.0, abs=1e-3)
    assert acquisition_scores(a[:1], "label_disagreement")[0] == pytest.approx((1 - 0.95) / 2)
    wrong = analysis("wrong_class", 1, [0.3, 0.6, 0.1], [(1, 0.9)])
    rows = rank_images(pool() + [wrong], "label_disagreement")
    assert rows[0]["file_name"] == "wrong_class" and rows[0]["label_disagreement"] == pytest.approx(0.95)
    # no proposal at all: the MoI scores are maximal
    empty = analysis("no_proposal", 2, [np.nan] * 3, [])
    assert acquisition_scores([empty], "moi_entropy")[0] == 1.0


def test_random_is_seeded_normals_are_refused_and_candidates_marked():
    a = pool()
    assert np.array_equal(acquisition_scores(a, "random", seed=3), acquisition_scores(a, "random", seed=3))
    assert not np.array_equal(acquisition_scores(a, "random", seed=3), acquisition_scores(a, "random", seed=4))
    normal = analysis("normal", 0, [0.1, 0.1, 0.8], [])
    with pytest.raises(ValueError, match="normal image has no box"):
        acquisition_scores(a + [normal], "combined")
    rows = rank_images(a + [normal], "combined", pseudo_keys=["confident_benign"])
    assert "normal" not in [r["file_name"] for r in rows]
    assert [r["file_name"] for r in rows if r["pseudo_candidate"]] == ["confident_benign"]
    with pytest.raises(ValueError, match="acquisition"):
        acquisition_scores(a, "margin")


def test_suggestions_are_written_as_csv_and_contact_sheet(tiny_cfg, phantom_root, tmp_path):
    from detectron2.data import DatasetCatalog

    from wssdl_d2.active.suggest import suggest, write_suggestions
    from wssdl_d2.config import load_config
    from wssdl_d2.inference import WSSDLPredictor

    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0, "TEST.DETECTIONS_PER_IMAGE": 4})
    torch.manual_seed(0)
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(tmp_path)).save("model")
    opts = [f"{k}" for k in (
        "MODEL.WEIGHTS", str(tmp_path / "model.pth"), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        "WSSDL.SELFTRAIN.FRACTION", "1.0", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "32", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64")]
    config = str(tmp_path / "cfg.yaml")
    with open(config, "w") as f:
        f.write(cfg.dump())
    out = tmp_path / "suggest"
    weak = [d for d in DatasetCatalog.get("testphantom_train_weak_30") if d.get("supervision") == "weak"]
    ranked = suggest(WSSDLPredictor(load_config(config, opts)), weak, "combined", 0)
    write_suggestions(str(out), ranked, top=5)
    with open(out / "suggestions.csv") as f:
        rows = list(csv.DictReader(f))
    masses = [d for d in DatasetCatalog.get("testphantom_train_weak_30") if d["image_label"] in (1, 2)]
    assert len(rows) == len(masses) and [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert any(r["pseudo_candidate"] == "True" for r in rows)  # FRACTION 1: every consistent image
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.shape[1] >= 5 * 150
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_suggestions(str(out), ranked, top=5)
    # the command line: the dataset's weak images, trailing config options, existing files refused
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "suggest_annotations.py"), "--config-file", config,
           "--dataset", "testphantom_train_weak_30", "--output", str(out), "--top", "5"]
    proc = subprocess.run(cmd + opts, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    proc = subprocess.run(cmd + ["--overwrite"] + opts, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{len(rows)} images ranked by combined" in proc.stdout and "suggestions.csv" in proc.stdout
