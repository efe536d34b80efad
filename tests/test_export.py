"""tools/export_model.py: the traced TorchScript model gives the Python model's boxes, scores and classes, on the
sample image and on another image of another size; the .json contract is written."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.events import EventStorage

from wssdl_d2.data.image_io import read_image
from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.inference import WSSDLPredictor
from wssdl_d2.inference.export import TorchScriptPredictor


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _export(args):
    """tools/export_model.py run as a user runs it."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_model.py")] + args,
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def trained(tiny_cfg, tmp_path):
    """A tiny model after a few training iterations (so its scores are not uniform), with its config file."""
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.01, "TEST.DETECTIONS_PER_IMAGE": 20})
    torch.manual_seed(0)
    model = WSSDLTrainer.build_model(cfg)
    batch = next(iter(WSSDLTrainer.build_train_loader(cfg)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with EventStorage(0):
        for _ in range(3):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("trained")
    cfg.MODEL.WEIGHTS = str(tmp_path / "trained.pth")
    config = tmp_path / "trained.yaml"
    config.write_text(cfg.dump())
    return cfg, config


def test_exported_model_gives_the_python_models_boxes(trained, phantom_root, tmp_path):
    cfg, config = trained
    sample = phantom_root / "images" / "benign" / "benign (1).png"
    other = tmp_path / "other.png"  # another image, at another size and aspect ratio
    image = read_image(phantom_root / "images" / "malignant" / "malignant (2).png")
    cv2.imwrite(str(other), cv2.resize(image, (150, 90)))
    output = tmp_path / "exported" / "model.ts"
    proc = _export(["--config-file", str(config), "--sample-image", str(sample), "--check-images", str(other),
                    "--output", str(output)])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "max box difference" in proc.stdout and f"exported {output}" in proc.stdout
    meta = json.loads(output.with_suffix(".json").read_text())
    assert meta["exporter"].endswith("torch.jit.trace") and meta["max_box_difference"] < 1e-3
    assert meta["sample_detections"] > 0 and meta["min_size_test"] == cfg.INPUT.MIN_SIZE_TEST

    python, exported = WSSDLPredictor(cfg), TorchScriptPredictor(str(output))
    for path in (sample, other):
        image = read_image(path)
        a, b = python(image), exported(image)
        assert len(a.scores) > 0 and len(a.scores) == len(b.scores)
        np.testing.assert_array_equal(a.classes, b.classes)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        assert a.diagnosis == b.diagnosis and (b.height, b.width) == image.shape[:2]


def test_export_refuses_missing_weights_and_bad_sample(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(tmp_path)).save("random")
    cfg.MODEL.WEIGHTS = str(tmp_path / "random.pth")
    config = tmp_path / "random.yaml"
    config.write_text(cfg.dump())
    proc = _export(["--config-file", str(config), "--sample-image", str(tmp_path / "none.png"), "--output",
                    str(tmp_path / "m.ts")])
    assert proc.returncode == 2 and "image file not found" in proc.stderr
    proc = _export(["--config-file", str(config), "--sample-image", str(tmp_path / "none.png"), "--output",
                    str(tmp_path / "m.ts"), "MODEL.WEIGHTS", ""])
    assert proc.returncode == 2 and "MODEL.WEIGHTS is empty" in proc.stderr
    assert not (tmp_path / "m.ts").exists()
