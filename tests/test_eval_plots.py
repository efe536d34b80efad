"""Plots are valid PNG images; example selection; tools/report.py writes an HTML page linking its PNGs."""
import importlib.util
import os
import re

import numpy as np
import pytest
from PIL import Image

from wssdl_d2.evaluation.examples import select_examples, write_examples_page
from wssdl_d2.evaluation.plots import plot_corloc_bars, plot_froc, plot_roc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, *path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path, min_size=(200, 200)):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 0, f"{path} is blank"


def _metrics(value):
    return {"CorLoc": {"value": value, "lo": value - 5, "hi": value + 5},
            "CorLoc-benign": {"value": None, "lo": None, "hi": None},  # undefined: left out, not an error
            "CorLoc_top1": {"value": value - 3, "lo": value - 9, "hi": value + 2}}


def test_plots_are_valid_pngs(tmp_path):
    assert_png(plot_froc({"a": ([0, 0.25, 1.0, 3.0], [0.4, 0.5, 0.7, 0.8]), "b": ([0.5, 2.0], [0.3, 0.6])},
                         str(tmp_path / "f" / "froc.png")))
    assert_png(plot_corloc_bars({"strong": _metrics(70.0), "joint": _metrics(80.0), "full": _metrics(85.0)},
                                str(tmp_path / "bars.png")))
    assert_png(plot_roc({"a": ([0, 0, 0.5, 1], [0, 0.5, 1, 1], 0.875), "b": ([0, 1], [0, 1], None)},
                        str(tmp_path / "roc.png")))


def _outcome(label, hit=False, fp=0):
    return {"image_label": label, "has_mass": label > 0, "hit_any": hit, "fp_at_tau": fp}


def test_example_selection_spreads_over_categories():
    outcomes = ([_outcome(2, True)] * 3 + [_outcome(1, True)] * 3 + [_outcome(2)] + [_outcome(0, fp=2)] * 2
                + [_outcome(0)] + [{"image_label": 1, "has_mass": False, "hit_any": False, "fp_at_tau": 0}])
    # round 1: M found 0, B found 3, M missed 6, (no B missed), N with FP 7, N clean 9; round 2: 1, 4, 8
    assert select_examples(outcomes, 9) == [0, 3, 6, 7, 9, 1, 4, 8, 2]
    assert select_examples(outcomes, 3) == [0, 3, 6]
    assert 10 not in select_examples(outcomes, 50)  # a weak image (no box) is no example


def test_examples_page(tmp_path):
    image = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    detections = [{"file_name": __file__, "gt_boxes": [[5, 5, 30, 30]], "boxes": [[6, 6, 31, 29], [40, 5, 60, 20]],
                   "scores": [0.9, 0.3], "classes": [1, 0]}] * 2
    outcomes = [_outcome(2, True), _outcome(2, False)]
    path, indices = write_examples_page(str(tmp_path / "ex.png"), detections, outcomes, tau=0.5,
                                        read_image=lambda p: image)
    assert indices == [0, 1]
    assert_png(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        write_examples_page(str(tmp_path / "x.png"), [dict(detections[0], file_name="/nonexistent.png")],
                            outcomes[:1], tau=0.5)


def test_report_tool(phantom_root, tmp_path):
    from detectron2.data import DatasetCatalog

    from wssdl_d2.evaluation import CorLocEvaluator

    helpers = _load("corloc_evaluator_tests", "tests", "test_corloc_evaluator.py")
    _perfect, _run = helpers._perfect, helpers._run

    def weaker(record):
        boxes, scores, classes = _perfect(record)
        return boxes, scores * (0.5 if record["image_id"] % 2 else 1.0), classes

    _run(CorLocEvaluator("testphantom_val", str(tmp_path / "good" / "inference"), bootstrap_samples=100,
                         plots=False), _perfect)
    _run(CorLocEvaluator("testphantom_val", str(tmp_path / "weak" / "inference"), bootstrap_samples=100,
                         plots=False), weaker)
    from wssdl_d2.cli import report  # tools/report.py, wssdl-report

    index = report.run([str(tmp_path / "good"), str(tmp_path / "weak" / "inference"), "--out",
                         str(tmp_path / "report"), "--examples", "4"])
    page = open(index).read()
    linked = re.findall(r'<img src="([^"]+)"', page)
    assert {"corloc.png", "froc.png", "roc.png", "examples_0_good.png", "examples_1_weak.png"} == set(linked)
    for name in linked:
        assert_png(os.path.join(tmp_path, "report", name))
    assert "good" in page and "weak" in page and "100.00 [100.00, 100.00]" in page
    assert len(DatasetCatalog.get("testphantom_val")) > 4
