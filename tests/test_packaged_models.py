"""The models this repository ships, as installed: all are in the packaged index, their files
match the index's sha256 and size budget, load weights-only from safetensors, and run offline on a generated scan;
the storage check recorded when they were shipped kept every CorLoc hit and diagnosis of the float32 checkpoint.

(tests/test_shipped_model.py tests the shipping machinery itself on a tiny phantom model in a temporary zoo.)"""
import json
import os

import numpy as np
import pytest
import torch

from wssdl_d2 import model_zoo
from wssdl_d2.cli.default_model import DEFAULT_MODEL
from wssdl_d2.model_zoo import load_checkpoint
from wssdl_d2.model_zoo.download import file_sha256
from wssdl_d2.model_zoo.index import PACKAGED_INDEX, checkpoint_entry
from wssdl_d2.model_zoo.shipped import calibration_path, packaged_path, shipped_config_path
from wssdl_d2.release.ship import SIZE_BUDGET

#: What MODEL_ZOO.md's cards describe: the default detector (two sites), the proposed method and the fully
#: supervised model on the BUSI pool.
SHIPPED = ("BUSI_BrEaST/fully_supervised.yaml", "BUSI/wssdl.yaml", "BUSI/fully_supervised.yaml")
#: float16 storage: CorLoc change (points) and malignancy-score change allowed on the check images. Measured for
#: BUSI/wssdl.yaml: CorLoc 66.67 -> 66.87 (any box), 70.83 -> 70.63 (top-1), malignancy score at most 0.055.
CORLOC_TOLERANCE, SCORE_TOLERANCE = 0.5, 0.1


def _packaged_entries():
    with open(PACKAGED_INDEX) as f:
        return json.load(f)["models"]


@pytest.fixture(autouse=True)
def packaged_index_only(monkeypatch):
    monkeypatch.delenv("WSSDL_MODEL_INDEX", raising=False)  # a lab's own index must not shadow the package's


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_files_match_the_index_and_load_weights_only(name):
    assert name in _packaged_entries()
    entry = checkpoint_entry(name)
    weights = packaged_path(entry, entry["packaged"])
    assert weights.endswith(".safetensors") and os.path.isfile(weights)
    assert file_sha256(weights) == entry["sha256"] and os.path.getsize(weights) == entry["size"]
    assert entry["size"] <= SIZE_BUDGET
    assert shipped_config_path(entry) and calibration_path(entry)  # both verified against their sha256
    state = load_checkpoint(weights)["model"]
    assert state and all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("name", SHIPPED)
def test_float16_storage_kept_corloc_and_diagnoses(name):
    """The storage check recorded at shipping (float32 checkpoint vs the float16 file, the 608 pool images): CorLoc
    both ways within CORLOC_TOLERANCE points, at most 1% of the hits changed, 99% of the diagnoses the same."""
    check = _packaged_entries()[name]["storage_check"]
    corloc = check["corloc"]
    assert check["images"] > 100 and corloc["images_with_mass"] > 100
    for key in ("hit_any", "hit_top1"):
        assert abs(corloc[f"{key}_stored"] - corloc[f"{key}_reference"]) <= CORLOC_TOLERANCE
        assert corloc[f"{key}_changed"] <= 0.01 * corloc["images_with_mass"]
    assert check["same_diagnosis"] >= 0.99 * check["images"]
    assert check["max_malignancy"] <= SCORE_TOLERANCE


def test_the_default_model_runs_offline_on_a_generated_scan(one_thread):
    from wssdl_d2.inference import WSSDLPredictor

    assert DEFAULT_MODEL in SHIPPED
    cfg = model_zoo.get_config(DEFAULT_MODEL, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    predictor = WSSDLPredictor(cfg)
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 30.0, size=(300, 400)).clip(0, 255).astype(np.uint8)  # speckle-like background
    yy, xx = np.mgrid[:300, :400]
    image[(yy - 150) ** 2 / 40 ** 2 + (xx - 200) ** 2 / 60 ** 2 < 1] //= 5  # a dark, mass-like ellipse
    prediction = predictor(np.repeat(image[:, :, None], 3, axis=2))
    assert prediction.boxes.shape[1:] == (4,) and np.isfinite(prediction.scores).all()
    assert (prediction.boxes[:, 2] <= 400 + 1e-3).all() and (prediction.boxes[:, 3] <= 300 + 1e-3).all()
