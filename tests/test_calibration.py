"""Calibration of the malignancy score: PAV, Platt / isotonic fits on a synthetic case whose true
probabilities are known (the calibration error drops), cross-fitting by fold, the calibration file round trip and
tools/calibrate.py on out-of-fold per-image tables laid out as a cross-validation writes them."""
import json
import os

import numpy as np
import pytest
from scipy.special import expit, logit

from wssdl_d2.evaluation.calibration import (Calibration, calibrate, cross_fitted, expected_calibration_error,
                                             fit_calibration, fit_isotonic, load_calibration, pav, reliability_bins)
from wssdl_d2.evaluation.outcomes import OUTCOME_COLUMNS
from wssdl_d2.evaluation.results_io import write_per_image



def synthetic(n=3000, folds=5, seed=0):
    """Pooled out-of-fold columns whose malignancy score is over-confident: true P(malignant) = p, score =
    sigmoid(3 logit p) for images with a malignant detection; a third of the normal images have none (score 0)."""
    rng = np.random.default_rng(seed)
    label = rng.choice([0, 1, 2], n, p=[0.2, 0.5, 0.3])
    p = np.clip(expit(rng.normal(np.where(label == 2, 1.0, -1.0), 1.0)), 1e-4, 1 - 1e-4)
    y = rng.random(n) < p  # the truth drawn from p, so p itself is perfectly calibrated
    label = np.where(y, 2, np.where(label == 2, 1, label))
    score = expit(3 * logit(p))
    no_detection = (label == 0) & (rng.random(n) < 1 / 3)
    score[no_detection] = 0.0
    return {"malignancy_score": score, "image_label": label, "fold": np.arange(n) % folds}, p, no_detection


def test_pav_is_the_monotone_least_squares_fit():
    np.testing.assert_allclose(pav(np.array([1, 3, 2, 2, 5, 0.0])), [1, 7 / 3, 7 / 3, 7 / 3, 2.5, 2.5])
    np.testing.assert_allclose(pav(np.array([0, 1.0, 0]), np.array([1, 1, 3.0])), [0, 0.25, 0.25])
    np.testing.assert_allclose(pav(np.arange(4.0)), np.arange(4.0))  # already monotone: unchanged
    # isotonic: equal scores share one value; the fit is non-decreasing and clipped away from 0 and 1
    params = fit_isotonic(np.array([0.1, 0.1, 0.5, 0.9]), np.array([1, 0, 0, 1]))
    iso = Calibration("isotonic", params)
    assert iso(0.1) == pytest.approx(iso(0.5)) == pytest.approx(1 / 3)
    assert iso(0.9) == pytest.approx(1 - params["clip"]) and params["clip"] == pytest.approx(0.1)


def test_ece_uses_equal_width_bins():
    p = np.array([0.05, 0.05, 0.95, 0.95, 1.0])
    y = np.array([0, 0, 1, 1, 0])
    bins = reliability_bins(p, y, 10)
    assert bins["count"][0] == 2 and bins["count"][9] == 3 and sum(bins["count"]) == 5  # 1.0 in the last bin
    expected = 2 / 5 * 0.05 + 3 / 5 * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3)
    assert expected_calibration_error(p, y, 10) == pytest.approx(expected)


def test_calibration_of_a_known_overconfident_score_lowers_the_error():
    pooled, p, no_detection = synthetic()
    y = (pooled["image_label"] == 2).astype(float)
    platt = fit_calibration(pooled["malignancy_score"], y, "platt")
    assert platt.parameters["a"] == pytest.approx(1 / 3, abs=0.05) and abs(platt.parameters["b"]) < 0.15
    report = calibrate(pooled)
    before = report["uncalibrated"]["ece"]
    assert before > 0.05
    for name in ("platt", "isotonic"):
        after = report["methods"][name]["cross_fitted"]
        assert after["ece"] < before / 2 and after["log_loss"] < report["uncalibrated"]["log_loss"]
    assert report["method"] in ("platt", "isotonic") and report["chosen_by"] == "lowest cross-fitted log-loss"
    # the calibrated probabilities come close to the true ones (p is known here)
    fitted = Calibration(report["method"], report["parameters"])(pooled["malignancy_score"])
    assert np.mean(np.abs(fitted - p)[~no_detection]) < 0.05
    assert report["data"] == {"images": 3000, "folds": 5, "malignant": int(y.sum()),
                              "benign": int(np.sum(pooled["image_label"] == 1)),
                              "normal": int(np.sum(pooled["image_label"] == 0)), "prevalence": float(y.mean()),
                              "without_malignant_detection": int(no_detection.sum())}
    mass = calibrate(pooled, population="mass")
    assert mass["data"]["normal"] == 0 and "image with a mass" in mass["target"]


def test_cross_fitting_predicts_each_fold_from_the_others():
    scores = np.array([0.2, 0.2, 0.8, 0.8])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    out = cross_fitted(scores, y, np.array([0, 0, 1, 1]), "isotonic")
    # fold 0 is predicted by a fit on fold 1 only (all malignant), and vice versa
    assert out[0] == out[1] == pytest.approx(1 - 1 / 6) and out[2] == out[3] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least two folds"):
        cross_fitted(scores, y, np.zeros(4), "platt")


def _write_crossval(folder, pooled):
    for fold in np.unique(pooled["fold"]):
        rows = []
        for k in np.flatnonzero(pooled["fold"] == fold):
            row = {c: 0 for c in OUTCOME_COLUMNS}
            row.update(image_id=int(k), file_name=f"img{k}.png", image_label=int(pooled["image_label"][k]),
                       malignancy_score=float(pooled["malignancy_score"][k]), top1_score="", top1_iou="",
                       best_iou="", abnormality_score=float(pooled["malignancy_score"][k]))
            rows.append(row)
        write_per_image(os.path.join(folder, "wssdl_20", f"fold{fold}", "inference"), rows)


def test_calibrate_tool_on_a_crossval_folder(tmp_path, capsys):
    pooled, _, _ = synthetic(n=400, folds=4, seed=1)
    _write_crossval(str(tmp_path / "cv"), pooled)
    from wssdl_d2.cli import calibrate as tool  # tools/calibrate.py, wssdl-calibrate
    out = tmp_path / "calib"
    report = tool.run(["--crossval", str(tmp_path / "cv"), "--config", "wssdl_20", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "400 images" in printed and "uncalibrated score" in printed and "ECE (10 bins)" in printed
    assert (out / "reliability.png").stat().st_size > 10000
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["method"] == report["method"] and saved["data"]["folds"] == 4
    calibration = load_calibration(str(out / "calibration.json"))
    scores = np.linspace(0, 1, 5)
    np.testing.assert_allclose(calibration(scores), Calibration(report["method"], report["parameters"])(scores))
    with pytest.raises(FileExistsError, match="calibration.json exists; pass --overwrite"):
        tool.run(["--crossval", str(tmp_path / "cv"), "--config", "wssdl_20", "--out", str(out)])
    with pytest.raises(FileNotFoundError, match="no such cross-validation run folder"):
        tool.run(["--crossval", str(tmp_path / "cv"), "--config", "nope", "--out", str(tmp_path / "x")])


def test_a_bad_calibration_file_is_refused_naming_it(tmp_path):
    bad = tmp_path / "calibration.json"
    bad.write_text(json.dumps({"format": 1, "method": "isotonic", "parameters": {"x": [0, 1], "y": [0.9, 0.1],
                                                                                  "clip": 0.01}}))
    with pytest.raises(ValueError, match=f"{bad}.*non-decreasing"):
        load_calibration(str(bad))
    bad.write_text(json.dumps({"format": 1, "method": "magic", "parameters": {}}))
    with pytest.raises(ValueError, match=f"{bad}: method 'magic'"):
        load_calibration(str(bad))
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad}: not readable JSON"):
        load_calibration(str(bad))
