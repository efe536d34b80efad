"""Grad-CAM: the map follows the activations the gradient weighs; on a model it explains the top detection;
tools/saliency.py writes the overlays."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from wssdl_d2.data.image_io import read_image
from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.inference import WSSDLPredictor
from wssdl_d2.inference.saliency import default_feature, grad_cam_map, overlay, saliency

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("one_thread")


def test_grad_cam_map_peaks_where_the_positively_weighted_channel_is_active():
    activations = np.zeros((3, 8, 8), np.float32)
    activations[0, 2, 3] = 5.0  # the class evidence
    activations[1, 6, 6] = 9.0  # evidence against the class (negative gradient)
    activations[2] = 1.0  # a channel the score does not depend on
    gradients = np.zeros_like(activations)
    gradients[0], gradients[1] = 0.5, -0.5
    cam = grad_cam_map(activations, gradients)
    assert cam.shape == (8, 8) and cam.max() == pytest.approx(1.0)
    assert np.unravel_index(cam.argmax(), cam.shape) == (2, 3)
    assert cam[6, 6] == 0.0 and cam.min() == 0.0
    assert not grad_cam_map(activations, -gradients[:, :, :] * (np.arange(3) == 0)[:, None, None]).any()


@pytest.fixture
def predictor(tiny_cfg, tmp_path):
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0, "TEST.DETECTIONS_PER_IMAGE": 10})
    torch.manual_seed(0)
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(tmp_path)).save("model")
    cfg.MODEL.WEIGHTS = str(tmp_path / "model.pth")
    return WSSDLPredictor(cfg)


def test_saliency_explains_the_top_detection_and_the_moi(predictor, phantom_root, tmp_path):
    image = read_image(phantom_root / "images" / "malignant" / "malignant (1).png")
    pred = predictor(image)
    result = saliency(predictor, image, "top")
    assert default_feature(predictor.model.backbone) == "res5" == result.feature
    assert result.heatmap.shape == image.shape[:2] and result.heatmap.dtype == np.float32
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0 and np.isfinite(result.heatmap).all()
    # the explained logit is the one behind the predictor's top detection
    assert result.det_class == pred.classes[0] and result.score == pytest.approx(float(pred.scores[0]), abs=1e-5)
    assert np.allclose(result.box, pred.boxes[0], atol=1e-3)
    assert all(p.grad is None for p in predictor.model.parameters())  # no gradient left behind
    moi = saliency(predictor, image, "moi", image_label=2, feature="p4")
    assert moi.det_class == 1 and moi.feature == "p4" and moi.heatmap.shape == image.shape[:2]
    drawn = overlay(image, result)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8 and not np.array_equal(drawn, image)
    with pytest.raises(ValueError, match="choose one of"):
        saliency(predictor, image, feature="res9")
    with pytest.raises(ValueError, match="image_label"):
        saliency(predictor, image, "moi")


def _saliency_tool(args):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "saliency.py")] + args, capture_output=True,
                          text=True, timeout=300, env=env)


def test_saliency_tool_writes_an_overlay(predictor, phantom_root, tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text(predictor.cfg.dump())
    image = phantom_root / "images" / "benign" / "benign (1).png"
    # trailing KEY VALUE pairs after the many-valued --input are config overrides, not images
    args = ["--config-file", str(config), "--output", str(tmp_path / "sal"), "--target", "moi", "--label", "benign",
            "--input", str(image), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    proc = _saliency_tool(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = read_image(tmp_path / "sal" / "benign (1)_gradcam.png")
    assert written.shape == read_image(image).shape
    proc = _saliency_tool(args)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr
    proc = _saliency_tool(args[:-2] + ["--overwrite", "NO_SUCH.KEY", "1"])
    assert proc.returncode == 2 and "NO_SUCH.KEY" in proc.stderr
