"""tools/demo.py and wssdl_d2.inference: inputs, predictor, diagnosis rule, drawings and result files."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from detectron2.checkpoint import DetectionCheckpointer
from PIL import Image
from pydicom.uid import RLELossless
from test_demo_image_io import write_dicom

from wssdl_d2.data.image_io import read_image
from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.evaluation.outcomes import image_outcome
from wssdl_d2.inference import WSSDLPredictor, diagnose, draw_prediction, predict_files
from wssdl_d2.config import merge_config
from wssdl_d2.inference.inputs import expand_inputs
from wssdl_d2.cli import split_trailing_opts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_diagnosis_follows_the_evaluators_rule():
    normal = diagnose([0.3, 0.1], [1, 0], tau=0.5)
    assert (normal.label, normal.name) == (0, "normal")
    assert normal.probability == pytest.approx(0.7)
    assert normal.scores == pytest.approx({"normal": 0.7, "benign": 0.1, "malignant": 0.3})
    benign = diagnose([0.55, 0.9, 0.6], [1, 0, 1], tau=0.5)
    assert (benign.name, benign.probability) == ("benign", pytest.approx(0.9))
    assert benign.scores == pytest.approx({"normal": 0.1, "benign": 0.9, "malignant": 0.6})
    assert diagnose([], [], tau=0.5).name == "normal" and diagnose([], []).probability == 1.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(0, 5))
        scores, classes = rng.random(n), rng.integers(0, 2, n)
        outcome, _, _ = image_outcome(0, [], [], np.zeros((n, 4)), scores, classes, tau=0.4)
        assert diagnose(scores, classes, tau=0.4).label == outcome["predicted_label"]


def test_expand_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    gray = np.zeros((8, 8), np.uint8)
    for name in ("a/x.png", "a/x_mask.png", "a/x_mask_1.png", "a/deep/y.JPG", "a/notes.txt", "b.tif"):
        path = tmp_path / name
        if name.endswith("txt"):
            path.write_text("not an image")
        else:
            Image.fromarray(gray).save(path, format="PNG")
    write_dicom(tmp_path / "a" / "deep" / "IM0001", gray)
    found = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.tif"), str(tmp_path / "a" / "x.png")])
    names = [os.path.relpath(f, tmp_path) for f in found]
    assert names == ["a/x.png", "a/deep/IM0001", "a/deep/y.JPG", "b.tif"]
    assert expand_inputs([str(tmp_path / "a" / "x_mask.png")]) == [str(tmp_path / "a" / "x_mask.png")]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        expand_inputs([str(tmp_path / "a"), str(tmp_path / "nothing-here*.png")])


@pytest.fixture
def checkpoint(tiny_cfg, tmp_path):
    """A (randomly initialised) tiny model's checkpoint and a config that keeps every detection."""
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0, "TEST.DETECTIONS_PER_IMAGE": 4})
    model = WSSDLTrainer.build_model(cfg)
    (tmp_path / "ckpt").mkdir()
    DetectionCheckpointer(model, save_dir=str(tmp_path / "ckpt")).save("model")
    cfg.MODEL.WEIGHTS = str(tmp_path / "ckpt" / "model.pth")
    return cfg


def test_predictor_refuses_missing_weights(tiny_cfg):
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        WSSDLPredictor(tiny_cfg())
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        WSSDLPredictor(tiny_cfg(**{"MODEL.WEIGHTS": "/no/such/model.pth"}))


def test_predict_files_writes_drawings_json_csv_and_lists_bad_files(checkpoint, phantom_root, tmp_path):
    predictor = WSSDLPredictor(checkpoint)
    image = phantom_root / "images" / "malignant" / "malignant (1).png"
    gray = read_image(image)[:, :, 0]
    cine = write_dicom(tmp_path / "cine.dcm", np.stack([gray, 255 - gray]), transfer_syntax=RLELossless)
    broken = tmp_path / "broken.png"
    broken.write_bytes(image.read_bytes()[:100])
    out = tmp_path / "out"
    summary = predict_files(predictor, [str(image), str(cine), str(broken)], str(out), threshold=0.0, frame=1,
                            progress=False, log=lambda *a: None)
    assert [e["file"] for e in summary["errors"]] == [str(broken)]
    assert "cannot read image" in summary["errors"][0]["error"]
    png, dicom = summary["images"]
    assert (dicom["frame"], dicom["num_frames"], png["frame"], png["num_frames"]) == (1, 2, 0, 1)
    # the DICOM's frame 1 is the inverted image: the detections are those of the inverted PNG
    direct = predictor(np.ascontiguousarray(255 - read_image(image)))
    assert len(dicom["detections"]) == len(direct.scores) > 0
    np.testing.assert_allclose([d["box"] for d in dicom["detections"]], direct.boxes, atol=0.01)
    assert dicom["diagnosis"] == direct.diagnosis.name
    assert all(d["score"] >= 0 and d["class_name"] in ("benign", "malignant") for d in png["detections"])
    written = json.loads((out / "predictions.json").read_text())
    assert written["images"] == summary["images"] and written["errors"] == summary["errors"]
    assert written["images_per_second"] > 0
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [str(image), str(cine)]
    assert rows[0]["diagnosis"] == png["diagnosis"] and int(rows[0]["num_detections"]) == len(png["detections"])
    drawing = np.asarray(Image.open(png["visualization"]))
    assert drawing.shape == (96, 128, 3) and not np.array_equal(drawing, read_image(image, "RGB"))


def test_drawing_shows_only_boxes_above_the_threshold(checkpoint, phantom_root):
    predictor = WSSDLPredictor(checkpoint)
    image = read_image(phantom_root / "images" / "benign" / "benign (1).png", "RGB")
    prediction = predictor(np.ascontiguousarray(image[:, :, ::-1]))
    assert len(prediction.scores) > 0
    none = draw_prediction(image, prediction, threshold=2.0, title="")
    some = draw_prediction(image, prediction, threshold=0.0, title="")
    assert (none != image).mean() < 0.02  # nothing drawn but the (empty) title
    assert (some != image).mean() > (none != image).mean()


def _demo(args, timeout=300):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "demo.py")] + args
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_demo_cli(checkpoint, phantom_root, tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text(checkpoint.dump())
    out = tmp_path / "demo"
    images = tmp_path / "scans"
    (images / "sub").mkdir(parents=True)
    for k, name in enumerate(("benign (1)", "benign (1)_mask", "malignant (2)")):
        source = phantom_root / "images" / name.split(" ")[0] / f"{name}.png"
        shutil.copy(source, images / ("sub" if k == 2 else "") / f"{name}.png")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 40)
    proc = _demo(["--config-file", str(config), "--input", str(images), str(bad), "--output", str(out),
                  "--confidence-threshold", "0.3"])
    assert proc.returncode == 1, proc.stderr[-3000:]  # one unreadable file
    assert f"error: {bad}:" in proc.stderr and "images/s" in proc.stdout
    result = json.loads((out / "predictions.json").read_text())
    assert [os.path.relpath(r["file"], images) for r in result["images"]] == ["benign (1).png", "sub/malignant (2).png"]
    assert all(os.path.isfile(r["visualization"]) for r in result["images"])
    assert all(r["diagnosis"] in ("normal", "benign", "malignant") for r in result["images"])


def test_trailing_config_options_are_not_inputs(checkpoint, phantom_root, tmp_path):
    import argparse

    config = tmp_path / "demo.yaml"
    config.write_text(checkpoint.dump())
    image = str(phantom_root / "images" / "normal" / "normal (1).png")
    with pytest.raises(FileNotFoundError, match="no image found for input"):
        expand_inputs([str(tmp_path / "none*.png")])
    # KEY VALUE pairs after --input are config options, not inputs
    args = split_trailing_opts(argparse.Namespace(input=[image, "MODEL.WEIGHTS", str(tmp_path / "x.pth")], opts=[]),
                               "input")
    assert args.input == [image] and args.opts == ["MODEL.WEIGHTS", str(tmp_path / "x.pth")]
    with pytest.raises(FileNotFoundError, match="x.pth: checkpoint file not found"):
        WSSDLPredictor(merge_config(str(config), args.opts))
    with pytest.raises(ValueError, match="NO_SUCH.KEY"):
        merge_config(str(config), ["NO_SUCH.KEY", "1"])
    proc = _demo(["--config-file", str(config), "--quiet", "--input", image, image, "MODEL.WEIGHTS",
                  checkpoint.MODEL.WEIGHTS, "TEST.DETECTIONS_PER_IMAGE", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 image(s) in" in proc.stdout
    proc = _demo(["--config-file", str(config), "--input", str(tmp_path / "none*.png")])
    assert proc.returncode == 2 and "no image found for input(s)" in proc.stderr
