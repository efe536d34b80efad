"""Models shipped inside the package: a tiny phantom model shipped into a temporary zoo (the index path
monkeypatched, nothing downloaded) is found offline by ``get(..., trained=True)`` / ``wssdl_d2://``, matches its
sha256, loads weights-only, gives the float32 checkpoint's detections within a stated tolerance when stored in
float16, and is what tools/demo.py runs with nothing but ``--input``, printing the calibrated probability of
malignancy beside the uncalibrated score."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog

from wssdl_d2 import model_zoo
from wssdl_d2.cli import default_model
from wssdl_d2.data.image_io import read_image
from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.evaluation.calibration import Calibration, write_calibration
from wssdl_d2.inference import WSSDLPredictor
from wssdl_d2.model_zoo import ChecksumError, UnsafeCheckpointError, load_checkpoint
from wssdl_d2.model_zoo import index as zoo_index
from wssdl_d2.model_zoo import shipped
from wssdl_d2.release.ship import ship_checkpoint

from conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "Phantom/strong_only.yaml"
# the tiny model's shapes, and a test threshold that keeps its (random) detections
SHIP_OVERRIDES = [v for k, v in zip(TINY_OPTS[::2], TINY_OPTS[1::2]) if k.startswith(("MODEL.", "INPUT."))
                  for v in (k, v)] + ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "4"]
# float16 storage tolerance (the random tiny model; the BUSI models' measured numbers are in their index entries)
BOX_TOLERANCE_PX, SCORE_TOLERANCE = 1.0, 0.01


def _calibration_json(folder):
    """A calibration report as tools/calibrate.py writes it (Platt parameters given, not fitted)."""
    report = {"format": 1, "target": "P(malignant | image) (test)", "population": "all", "method": "platt",
              "parameters": {"a": 2.0, "b": -1.0, "c": -3.0}, "methods": {}, "data": {"images": 0},
              "uncalibrated": {"ece": 0.0}, "reliability": {"uncalibrated": {"mean_p": [], "frac_pos": [],
                                                                            "lo": [0.0], "hi": [1.0], "count": [0]}},
              "ece_bins": {"count": 10}}
    return write_calibration(report, str(folder))["json"]


@pytest.fixture
def zoo(tiny_cfg, phantom_root, tmp_path, monkeypatch, one_thread):
    """A tiny random phantom model (its fp32 training-style checkpoint) shipped in float16 with a calibration into
    a temporary zoo, which replaces the packaged index (no $WSSDL_MODEL_INDEX); the default model is its config."""
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0, "TEST.DETECTIONS_PER_IMAGE": 4})
    torch.manual_seed(0)
    model = WSSDLTrainer.build_model(cfg)
    (tmp_path / "run").mkdir()
    DetectionCheckpointer(model, save_dir=str(tmp_path / "run")).save("model_final", iteration=4)
    index_path = tmp_path / "zoo" / "checkpoints.json"
    index_path.parent.mkdir()
    index_path.write_text(json.dumps({"format": 1, "models": {}}))
    monkeypatch.setattr(zoo_index, "PACKAGED_INDEX", str(index_path))
    monkeypatch.delenv("WSSDL_MODEL_INDEX", raising=False)
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", CONFIG)
    images = [str(phantom_root / "images" / label / f"{label} (1).png") for label in ("benign", "malignant", "normal")]
    name, entry = ship_checkpoint(str(tmp_path / "run" / "model_final.pth"), CONFIG, index_path=str(index_path),
                                  calibration=_calibration_json(tmp_path / "calib"), check_images=images,
                                  check_dataset="testphantom_val", config_overrides=SHIP_OVERRIDES)
    cfg.MODEL.WEIGHTS = str(tmp_path / "run" / "model_final.pth")
    return {"name": name, "entry": entry, "index": index_path, "root": index_path.parent, "fp32_cfg": cfg,
            "images": images}


def test_shipped_files_are_in_the_index_with_their_sha256_and_load_weights_only(zoo):
    from wssdl_d2.model_zoo.download import file_sha256

    entry, root = zoo["entry"], zoo["root"]
    weights = root / entry["packaged"]
    assert weights.parent == root / "trained" / "Phantom" / "strong_only" and weights.suffix == ".safetensors"
    assert sorted(p.name for p in weights.parent.iterdir()) == sorted([weights.name, "config.yaml",
                                                                        "calibration.json"])
    assert file_sha256(weights) == entry["sha256"] and weights.stat().st_size == entry["size"]
    for key in ("config", "calibration"):
        assert file_sha256(root / entry[key]["path"]) == entry[key]["sha256"]
    assert json.loads(zoo["index"].read_text())["models"][CONFIG]["packaged"] == entry["packaged"]
    stored = load_checkpoint(weights)["model"]
    assert all(v.dtype != torch.float16 for v in stored.values())  # stored float16, read back as float32
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        assert f.metadata()["stored_dtype"] == "float16"
        assert f.get_tensor("backbone.bottom_up.stem.conv1.weight").dtype == torch.float16
    # offline: resolved from the package folder, no cache, no URL
    assert model_zoo.resolve_zoo_path("wssdl_d2://" + CONFIG) == str(weights)
    model = model_zoo.get(CONFIG, trained=True, device="cpu")
    reference = torch.load(zoo["fp32_cfg"].MODEL.WEIGHTS, weights_only=True)["model"]
    name = "backbone.bottom_up.stem.conv1.weight"
    torch.testing.assert_close(model.state_dict()[name], reference[name].float(), atol=1e-3, rtol=1e-3)
    cfg = model_zoo.get_config(CONFIG, trained=True)
    assert cfg.MODEL.WEIGHTS == "wssdl_d2://" + CONFIG and cfg.MODEL.FPN.OUT_CHANNELS == 32  # the shipped config


def test_a_tampered_or_pickle_bearing_shipped_file_is_refused(zoo, tmp_path):
    weights = zoo["root"] / zoo["entry"]["packaged"]
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=f"{weights}.*changed or damaged"):
        model_zoo.get(CONFIG, trained=True, device="cpu")
    marker = tmp_path / "code_ran"

    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    weights.write_bytes(pickle.dumps({"model": RunsCode()}))  # a pickle under the shipped name
    with pytest.raises(UnsafeCheckpointError, match="not a readable .safetensors file"):
        load_checkpoint(weights)
    assert not marker.exists()
    os.remove(weights)
    with pytest.raises(shipped.ShippedFileMissing, match="missing from this installation.*train one"):
        model_zoo.resolve_zoo_path("wssdl_d2://" + CONFIG)


def test_float16_storage_gives_the_float32_checkpoints_detections(zoo, phantom_root):
    check = zoo["entry"]["storage_check"]
    assert check["images"] == 3 + len(DatasetCatalog.get("testphantom_val")) and check["dataset"] == "testphantom_val"
    assert check["same_at_tau"] == check["images"] and check["same_diagnosis"] == check["images"]
    assert check["unmatched_detections"] == 0 and check["reference_detections"] > 0
    assert check["max_box_px"] <= BOX_TOLERANCE_PX and check["max_score"] <= SCORE_TOLERANCE
    assert check["corloc"]["hit_any_changed"] == 0 and check["corloc"]["hit_top1_changed"] == 0
    # and independently of the shipping tool: the fp32 checkpoint vs the shipped file through the predictor
    fp32 = WSSDLPredictor(zoo["fp32_cfg"])
    cfg = model_zoo.get_config(CONFIG, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    stored = WSSDLPredictor(cfg)
    for path in zoo["images"]:
        image = read_image(path)
        a, b = fp32(image), stored(image)
        assert len(a.scores) == len(b.scores) > 0 and (a.classes == b.classes).all()
        assert np.abs(a.boxes - b.boxes).max() <= BOX_TOLERANCE_PX
        assert np.abs(a.scores - b.scores).max() <= SCORE_TOLERANCE


def test_a_ship_whose_storage_check_fails_leaves_the_shipped_model_as_it_was(zoo, tmp_path):
    """The storage check runs before anything is written into the package: a check that fails (here an image that
    is not there; on BUSI the check takes minutes, and can be interrupted) changes no shipped file, so the model
    shipped before still loads (its config's sha256 still matches the index)."""
    from wssdl_d2.data.errors import DatasetError

    folder = zoo["root"] / "trained" / "Phantom" / "strong_only"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    index = zoo["index"].read_text()
    other_run = SHIP_OVERRIDES[:-1] + ["3"]  # TEST.DETECTIONS_PER_IMAGE 3: another config.yaml
    with pytest.raises(DatasetError, match="not_there.png"):
        ship_checkpoint(zoo["fp32_cfg"].MODEL.WEIGHTS, CONFIG, index_path=str(zoo["index"]),
                        check_images=[str(tmp_path / "not_there.png")], config_overrides=other_run)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before and zoo["index"].read_text() == index
    assert model_zoo.get_config(CONFIG, trained=True).TEST.DETECTIONS_PER_IMAGE == 4


def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(tmp_path):
    """A truncated, empty or foreign .pth (an interrupted copy, a wrong file) is refused with the file's name, by
    load_checkpoint and by the MODEL.WEIGHTS loader, not with torch's bare RuntimeError / KeyError / EOFError."""
    from wssdl_d2.model_zoo import load_model_weights

    good = tmp_path / "good.pth"
    torch.save({"model": {"weight": torch.zeros(1, 1), "bias": torch.zeros(1)}}, good)
    whole = good.read_bytes()
    damaged = {"truncated.pth": whole[: len(whole) // 2], "empty.pth": b"", "foreign.pth": b"hello, not weights"}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnsafeCheckpointError, match=f"{tmp_path / name}: not a readable PyTorch checkpoint"):
            load_checkpoint(tmp_path / name)
        with pytest.raises(UnsafeCheckpointError, match=f"{tmp_path / name}: not a readable"):
            load_model_weights(torch.nn.Linear(1, 1), str(tmp_path / name))
    load_model_weights(torch.nn.Linear(1, 1), str(good))


def test_compare_predictions_pairs_detections_by_overlap_not_rank():
    from wssdl_d2.inference.diagnosis import diagnose
    from wssdl_d2.inference.predictor import Prediction
    from wssdl_d2.release.ship import compare_predictions

    def prediction(boxes, scores, classes):
        boxes, scores, classes = np.float32(boxes), np.float32(scores), np.int64(classes)
        return Prediction(boxes, scores, classes, diagnose(scores, classes), 100, 100)

    a = prediction([[0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]], [0.9, 0.30, 0.29], [1, 0, 0])
    b = prediction([[0, 0, 10.5, 10], [80, 80, 90, 90], [50, 50, 60, 60]], [0.89, 0.30, 0.29], [1, 0, 0])
    diff = compare_predictions(a, b)  # the two low boxes swapped ranks: still paired with their own partner
    assert diff["unmatched"] == 0 and diff["max_box_px"] == pytest.approx(0.5)
    assert diff["max_score"] == pytest.approx(0.01, abs=1e-6) and diff["same_at_tau"] and diff["same_diagnosis"]
    c = prediction([[0, 0, 10, 10]], [0.4], [0])
    diff = compare_predictions(a, c)
    assert diff["unmatched"] == 4 and not diff["same_at_tau"] and not diff["same_diagnosis"]


def test_demo_with_only_input_runs_the_shipped_model_with_its_calibration(zoo, tmp_path, capsys):
    from wssdl_d2.cli import demo  # tools/demo.py, wssdl-demo

    out = tmp_path / "out"
    assert demo.main(["--input", zoo["images"][1], "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"no --config-file given: using the shipped model {CONFIG}" in printed
    assert "P(malignant), calibrated:" in printed and "malignancy score, uncalibrated:" not in printed  # one answer
    record = json.loads((out / "predictions.json").read_text())["images"][0]
    expected = Calibration("platt", {"a": 2.0, "b": -1.0, "c": -3.0})(record["scores"]["malignant"])
    assert record["malignancy_score"] == record["scores"]["malignant"]
    assert record["p_malignant_calibrated"] == pytest.approx(float(expected), abs=1e-4)
    assert os.path.isfile(record["visualization"])


def test_without_a_shipped_model_the_tools_say_how_to_get_one(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "checkpoints.json"
    empty.write_text(json.dumps({"format": 1, "models": {}}))
    monkeypatch.setattr(zoo_index, "PACKAGED_INDEX", str(empty))
    monkeypatch.delenv("WSSDL_MODEL_INDEX", raising=False)
    from wssdl_d2.cli import demo  # tools/demo.py, wssdl-demo

    with pytest.raises(SystemExit) as stop:  # one error line, exit status 2 (wssdl_d2.cli.run_main)
        demo.main(["--input", str(tmp_path / "x.png")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"the default model {default_model.DEFAULT_MODEL} is not shipped" in err and "train one" in err


def _teacher_checkpoint(tiny_cfg, folder):
    """A mean-teacher run's checkpoint of configs/Phantom/wssdl_teacher.yaml (tiny shapes): the student as
    ``model``, a teacher whose weights differ from it (the student's + 1) as ``teacher``. Returns (path, teacher)."""
    cfg = tiny_cfg(os.path.join(ROOT, "configs", "Phantom", "wssdl_teacher.yaml"))
    torch.manual_seed(0)
    student = WSSDLTrainer.build_model(cfg).state_dict()
    teacher = {k: v + 1.0 if v.is_floating_point() else v.clone() for k, v in student.items()}
    path = folder / "model_final.pth"
    torch.save({"model": student, "iteration": 4,
                "teacher": {"model": teacher, "n_averaged": torch.tensor(3),
                            "thresholds": {"image_labels": torch.zeros(0, dtype=torch.long),
                                           "det_classes": torch.zeros(0, dtype=torch.long),
                                           "scores": torch.zeros(0, dtype=torch.float64)}}}, path)
    return path, teacher


def test_a_mean_teacher_run_is_published_and_shipped_with_its_teachers_weights(tiny_cfg, tmp_path, monkeypatch,
                                                                                 one_thread):
    """configs/*/wssdl_teacher.yaml evaluates the teacher (its metrics are the teacher's): tools/publish_model.py
    publishes, and --ship ships, the teacher's weights, and the zoo entry loads them both through get() and
    through build_trained_model (the predictor's loader), which refuses a teacher config's file without a teacher."""
    from wssdl_d2.release.publish import publish_checkpoint
    from wssdl_d2.model_zoo.safe_load import build_trained_model

    name = "Phantom/wssdl_teacher.yaml"
    checkpoint, teacher = _teacher_checkpoint(tiny_cfg, tmp_path)
    monkeypatch.delenv("WSSDL_MODEL_INDEX", raising=False)
    monkeypatch.setenv("WSSDL_CACHE", str(tmp_path / "cache"))

    def loads_the_teacher(model_state):
        for key, value in teacher.items():
            assert torch.equal(model_state[key].float(), value.float()), key

    # shipped in the package
    ship_index = tmp_path / "zoo" / "checkpoints.json"
    ship_index.parent.mkdir()
    ship_index.write_text(json.dumps({"format": 1, "models": {}}))
    monkeypatch.setattr(zoo_index, "PACKAGED_INDEX", str(ship_index))
    _, entry = ship_checkpoint(str(checkpoint), name, index_path=str(ship_index), fp16=False,
                               config_overrides=SHIP_OVERRIDES)
    loads_the_teacher(load_checkpoint(ship_index.parent / entry["packaged"])["model"])
    cfg = model_zoo.get_config(name, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    loads_the_teacher(build_trained_model(cfg).state_dict())

    # published for download
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format": 1, "models": {}}))
    monkeypatch.setattr(zoo_index, "PACKAGED_INDEX", str(empty))
    index, metrics = tmp_path / "index.json", tmp_path / "corloc.json"
    metrics.write_text(json.dumps({"dataset": "testphantom_val", "counts": {"images": 8}, "settings": {},
                                   "metrics": {"CorLoc": {"value": 50.0, "lo": 25.0, "hi": 75.0}}}))
    _, entry = publish_checkpoint(str(checkpoint), name, str(metrics), str(tmp_path / "www"), index_path=str(index),
                                  config_overrides=SHIP_OVERRIDES)
    loads_the_teacher(load_checkpoint(tmp_path / "www" / entry["file"])["model"])
    assert entry["config_overrides"] == SHIP_OVERRIDES + ["WSSDL.TEACHER.EVAL_WITH", "student"]
    assert entry["command"] == " ".join(["python tools/train_net.py --config-file", f"configs/{name}"]
                                        + SHIP_OVERRIDES)  # the run's command, without the added override
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(index))
    cfg = model_zoo.get_config(name, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    loads_the_teacher(build_trained_model(cfg).state_dict())
    loads_the_teacher(model_zoo.get(name, trained=True, device="cpu").state_dict())
