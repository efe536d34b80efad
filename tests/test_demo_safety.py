"""tools/demo.py never writes over its inputs, refuses an --output that is a file, keeps memory bounded on huge
scans (drawings are downscaled), states one diagnosis (the calibrated one when there is a calibration) with its
threshold, and shows users no library warnings."""
import json
import os
import resource
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from test_demo import ROOT, checkpoint  # noqa: F401  (the tiny model fixture)

from wssdl_d2.evaluation.calibration import Calibration
from wssdl_d2.inference import WSSDLPredictor, diagnose, predict_files
from wssdl_d2.inference.predictor import Prediction
from wssdl_d2.inference.results import prediction_record
from wssdl_d2.inference.run import MAX_DRAWING_SIDE, check_output_dir

sys.path.insert(0, os.path.join(ROOT, "tools"))
from wssdl_d2.cli import demo  # noqa: E402  (tools/demo.py, wssdl-demo)

sys.path.pop(0)


def _run_demo(args, warnings_env=False):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # as a user runs it
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py")] + args, capture_output=True,
                          text=True, timeout=300, env=env)


def _scans(phantom_root, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("benign (1)", "malignant (2)"):
        shutil.copy(phantom_root / "images" / name.split(" ")[0] / f"{name}.png", scans / f"{name}.png")
    return scans, {p: p.read_bytes() for p in scans.iterdir()}


def test_output_into_the_input_folder_is_refused_and_the_scans_are_kept(checkpoint, phantom_root, tmp_path):  # noqa: F811
    scans, before = _scans(phantom_root, tmp_path)
    config = tmp_path / "demo.yaml"
    config.write_text(checkpoint.dump())
    proc = _run_demo(["--config-file", str(config), "--quiet", "--input", str(scans), "--output", str(scans)])
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]  # before: 0, the scans replaced by drawings
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --output") and "would overwrite the input" in errors[0]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert {p: p.read_bytes() for p in scans.iterdir()} == before
    # an --output that is a file: one error line, not a traceback
    proc = _run_demo(["--config-file", str(config), "--quiet", "--input", str(scans),
                      "--output", str(scans / "benign (1).png")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: --output {scans / 'benign (1).png'} is a file, not a folder: "
                                                "give a folder for the drawings and predictions.json / "
                                                "predictions.csv"]
    assert {p: p.read_bytes() for p in scans.iterdir()} == before


def test_drawings_of_an_earlier_run_given_as_input_are_not_overwritten(phantom_root, tmp_path):
    scans, _ = _scans(phantom_root, tmp_path)
    (scans / "out").mkdir()
    drawing = scans / "out" / "benign (1).png"
    shutil.copy(scans / "benign (1).png", drawing)  # as left by `--input scans --output scans/out`
    files = [str(p) for p in sorted(scans.rglob("*.png"))]

    def never(image):
        raise AssertionError("nothing may be predicted before the output folder is checked")

    with pytest.raises(ValueError, match="would overwrite the input .*out/benign \\(1\\).png"):
        predict_files(never, files, str(scans / "out"), progress=False)
    check_output_dir(str(tmp_path / "new"), files)  # a fresh folder is fine
    check_output_dir(str(scans / "out"), files, visualize=False)  # only predictions.json / .csv are written


def test_a_huge_scan_is_drawn_downscaled_with_bounded_memory(checkpoint, tmp_path, one_thread):  # noqa: F811
    side = 6000  # 36 Mpixel; before the fix drawing it at full size took ~5 GB and tens of seconds
    image = np.zeros((side, side), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 5, 200, -1)
    path = tmp_path / "huge.png"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del image
    predictor = WSSDLPredictor(checkpoint)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    summary = predict_files(predictor, [str(path)], str(tmp_path / "out"), threshold=0.0, progress=False)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    (record,) = summary["images"]
    assert (record["width"], record["height"]) == (side, side)  # results stay in the original pixels
    with Image.open(record["visualization"]) as drawn:
        assert max(drawn.size) == MAX_DRAWING_SIDE
    assert growth < 1.5 * 2**30, f"peak memory grew by {growth / 2**30:.1f} GiB"


def _prediction(score, malignant, calibration=None):
    classes = np.array([1 if malignant else 0])
    diagnosis = diagnose([score], classes, tau=0.5)
    if calibration is not None:
        diagnosis.p_malignant = float(calibration(diagnosis.scores["malignant"]))
    return Prediction(np.array([[10, 10, 40, 40]], np.float32), np.array([score], np.float32), classes, diagnosis,
                      96, 128)


class _Loaded:
    frame, num_frames = 0, 1


def test_one_diagnosis_is_stated_from_the_calibrated_probability_with_its_threshold():
    shrink = Calibration("isotonic", {"x": [0.0, 1.0], "y": [0.0, 0.62], "clip": 0.0})  # 0.55 -> 0.34
    record = prediction_record("scan.png", _Loaded(), _prediction(0.55, True, shrink), 0.3)
    line = demo.diagnosis_line(record, 0.3)
    # before: "scan.png: malignant (0.55); P(malignant), calibrated: 0.34; ..." - two answers
    assert line.startswith("scan.png: benign (P(malignant), calibrated: 0.34 < 0.50; a mass scores >= 0.50)")
    assert "malignant (" not in line and "0.55" not in line
    assert record["diagnosis"] == "benign" and record["p_malignant_calibrated"] == pytest.approx(0.341, abs=1e-3)
    high = prediction_record("scan.png", _Loaded(), _prediction(0.9, False, Calibration("identity")), 0.3)
    assert (high["diagnosis"], high["diagnosis_basis"]) == ("benign", "P(malignant), calibrated: 0.00 < 0.50; "
                                                                      "a mass scores >= 0.50")
    sure = prediction_record("scan.png", _Loaded(), _prediction(0.8, True, Calibration("identity")), 0.3)
    assert (sure["diagnosis"], sure["diagnosis_basis"]) == ("malignant", "P(malignant), calibrated: 0.80 >= 0.50")
    plain = prediction_record("scan.png", _Loaded(), _prediction(0.55, True), 0.3)
    assert demo.diagnosis_line(plain, 0.3).startswith(
        "scan.png: malignant (top detection malignant, score 0.55 >= 0.50)")
    normal = prediction_record("scan.png", _Loaded(), _prediction(0.2, True), 0.3)
    assert (normal["diagnosis"], normal["diagnosis_basis"]) == ("normal", "no detection scores >= 0.50")


def test_demo_shows_users_no_library_warnings(checkpoint, phantom_root, tmp_path):  # noqa: F811
    scans, _ = _scans(phantom_root, tmp_path)
    config = tmp_path / "demo.yaml"
    config.write_text(checkpoint.dump())
    proc = _run_demo(["--config-file", str(config), "--quiet", "--input", str(scans / "benign (1).png"),
                      "--output", str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]  # before: torch.meshgrid's UserWarning, is_fx_tracing's notice
    result = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert result["images"][0]["diagnosis_basis"]
