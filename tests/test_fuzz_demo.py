"""Property-based robustness of the demo pipeline (read, predict, draw, write) with a real (tiny) model: random
and truncated image bytes and absurd image shapes end as a per-file error in ``errors`` or a prediction, never
an exception or a hang.

Found when written: an image of 1x2000 pixels crashed inside Detectron2's test-time resize (PIL "height and
width must be > 0"); the predictor now refuses it with a ValueError naming the size, recorded as that file's
error.
"""
import io
import json
import os
import tempfile

import numpy as np
import pytest
from detectron2.checkpoint import DetectionCheckpointer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_fuzz_readers import EXPLORE, VALID, _damaged

from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.inference import WSSDLPredictor, predict_files

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of the CI job
FUZZ = settings(max_examples=60 if EXPLORE else 12, deadline=None, derandomize=not EXPLORE, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from detectron2.config import get_cfg

    from wssdl_d2.config import add_wssdl_config, resolve_device
    from conftest import PHANTOM_CONFIG, TINY_OPTS

    cfg = get_cfg()
    add_wssdl_config(cfg)
    cfg.merge_from_file(PHANTOM_CONFIG)
    cfg.merge_from_list(list(TINY_OPTS) + ["DATASETS.TRAIN", "()", "DATASETS.TEST", "()",
                                           "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "3"])
    resolve_device(cfg)
    folder = tmp_path_factory.mktemp("fuzz_model")
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(folder)).save("model")
    cfg.MODEL.WEIGHTS = str(folder / "model.pth")
    return WSSDLPredictor(cfg)


def _run(predictor, files):
    with tempfile.TemporaryDirectory() as out:
        summary = predict_files(predictor, files, out, threshold=0.0, progress=False, log=lambda *a: None)
        written = json.loads(open(os.path.join(out, "predictions.json")).read())
    assert len(summary["images"]) + len(summary["errors"]) == len(files)
    assert written["images"] == summary["images"] and written["errors"] == summary["errors"]
    for error in summary["errors"]:
        assert error["file"] in files and error["error"]
    for record in summary["images"]:
        assert record["diagnosis"] in ("normal", "benign", "malignant") and 0 <= record["probability"] <= 1
        for det in record["detections"]:
            x0, y0, x1, y1 = det["box"]
            assert 0 <= x0 <= x1 <= record["width"] and 0 <= y0 <= y1 <= record["height"]
    return summary


@FUZZ
@given(data=st.data(), contents=st.lists(st.binary(max_size=512) | st.sampled_from(sorted(VALID)), min_size=1,
                                         max_size=3))
def test_demo_on_random_and_damaged_files(predictor, data, contents):
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for k, content in enumerate(contents):
            ext = content if isinstance(content, str) else data.draw(st.sampled_from(sorted(VALID) + [""]))
            if isinstance(content, str):  # a damaged valid image, or the valid image itself
                content = _damaged(VALID[ext], data.draw) if data.draw(st.booleans()) else VALID[ext]
            files.append(os.path.join(folder, f"f{k}{ext}"))
            with open(files[-1], "wb") as f:
                f.write(content)
        _run(predictor, files)


@FUZZ
@given(height=st.integers(1, 700), width=st.integers(1, 700), mode=st.sampled_from(["L", "RGB", "I;16", "P"]))
def test_demo_on_absurd_shapes(predictor, height, width, mode):
    rng = np.random.default_rng(height * 7919 + width)
    pixels = rng.integers(0, 255, (height, width, 3) if mode == "RGB" else (height, width)).astype(
        np.uint16 if mode == "I;16" else np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.png")
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
        summary = _run(predictor, [path])
    ratio = max(height, width) / min(height, width)
    if summary["errors"]:  # refused only when the resized short side (MAX_SIZE_TEST 128 / ratio) rounds to 0
        assert "too elongated" in summary["errors"][0]["error"] and ratio > 256
    else:
        assert ratio < 257


def test_elongated_image_is_a_clear_error(predictor):
    with pytest.raises(ValueError, match="image of 2000x1 pixels is too elongated"):
        predictor(np.zeros((1, 2000, 3), np.uint8))
