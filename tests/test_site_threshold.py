"""The site threshold fitted from image labels alone (wssdl_d2.evaluation.site_threshold, tools/site_threshold.py):
the rules' values, a synthetic site whose lesions score below 0.5 fixed by the cross-fitted threshold, the error of
a site without an abnormal image, cross-fitting that never sees the held-out fold, and the tool end to end."""
import json

import numpy as np
import pytest
from scipy.special import expit, logit

from wssdl_d2.data.folds import read_folds_csv
from wssdl_d2.evaluation.results_io import ResultsError, read_per_image, write_detections
from wssdl_d2.evaluation.site_threshold import (cross_fit, evaluate_site_threshold, fit_site_threshold,
                                                load_site_threshold, read_run_detections, run_names, site_folds)



def synthetic_site(n_abnormal=40, n_normal=10, folds=5, seed=0, lesion_score=(0.15, 0.35), fp_score=(0.05, 0.1)):
    """A site whose detector finds every lesion but scores it low: per abnormal image one box on the lesion
    (score in ``lesion_score``) and one elsewhere (score in ``fp_score``); per normal image one box (``fp_score``).
    Returns (images as in corloc_detections.json, folds (N,), folds table as read_folds_csv gives it)."""
    rng = np.random.default_rng(seed)
    images, table = [], {}
    labels = [1 + k % 2 for k in range(n_abnormal)] + [0] * n_normal
    for i, label in enumerate(labels):
        name = f"{['normal', 'benign', 'malignant'][label]}/case{i:03d}.png"
        fold = i % folds
        table[name] = (label, i, fold)
        if label:
            cls = label - 1
            gt = [[50.0, 60.0, 150.0, 140.0]]
            boxes = [[52.0, 61.0, 149.0, 142.0], [200.0, 10.0, 260.0, 50.0]]
            scores = [rng.uniform(*lesion_score), rng.uniform(*fp_score)]
            images.append({"image_id": i, "file_name": f"/data/site/{name}", "image_label": label,
                           "gt_boxes": gt, "gt_classes": [cls], "boxes": boxes, "scores": scores,
                           "classes": [cls, cls]})
        else:
            images.append({"image_id": i, "file_name": f"/data/site/{name}", "image_label": 0, "gt_boxes": [],
                           "gt_classes": [], "boxes": [[10.0, 10.0, 40.0, 40.0]],
                           "scores": [rng.uniform(*fp_score)], "classes": [0]})
    return images, np.asarray([i % folds for i in range(len(labels))]), table


def test_rate_rule_values():
    fit = fit_site_threshold([0.9, 0.8, 0.7, 0.6, 0.0], [2, 1, 1, 0, 0], "rate")
    assert fit["tau"] == pytest.approx(0.7) and fit["reachable"] and fit["rate"] == pytest.approx(0.6)
    assert fit["called_abnormal"] == pytest.approx(0.6)
    # 3 of 4 images are abnormal but only one has a detection: every detection counts and the fit says so
    fit = fit_site_threshold([0.9, 0.0, 0.0, 0.0], [1, 1, 1, 0], "rate")
    assert fit["tau"] == pytest.approx(0.9) and not fit["reachable"]


def test_prior_shift_matches_the_abnormal_rate():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.05, 0.6, 200)
    labels = np.r_[np.ones(150, int), np.zeros(50, int)]
    fit = fit_site_threshold(scores, labels, "prior_shift")
    mean = np.mean(expit(logit(scores) + fit["shift"]))
    assert mean == pytest.approx(0.75, abs=1e-6) and fit["reachable"]
    assert fit["tau"] == pytest.approx(expit(-fit["shift"]))
    assert fit["tau"] < 0.5  # scores mostly below 0.5 with 75% abnormal images: the threshold must come down


def test_a_site_whose_lesions_score_low_is_fixed_by_the_cross_fitted_threshold():
    images, folds, _ = synthetic_site()
    for rule in ("rate", "prior_shift"):
        result = evaluate_site_threshold(images, folds, rule, samples=200)
        assert result["reference"]["CorLoc"]["value"] == 0.0  # every lesion box scores below 0.5
        assert result["reference"]["CorLoc_top1"]["value"] == 100.0
        # cross-fitted: an image whose lesion scores below every other fold's lowest may stay below its threshold
        assert result["site"]["CorLoc"]["value"] >= 95.0, rule
        assert result["comparison"]["CorLoc"]["diff"] >= 95.0
        assert result["comparison"]["CorLoc"]["mcnemar"]["a_only"] >= 38
        assert result["comparison"]["CorLoc"]["mcnemar"]["b_only"] == 0
        assert all(f["tau"] < 0.5 for f in result["folds"].values())
    # the rate rule calls as many images abnormal as are labelled so: no detection on a normal image survives
    result = evaluate_site_threshold(images, folds, "rate", samples=200)
    assert result["site"]["FP_per_normal"] == 0.0
    assert result["site"]["called_abnormal"] == pytest.approx(0.8, abs=0.03)
    assert 0.15 <= result["deploy"]["tau"] <= 0.35


def test_a_site_without_abnormal_images_is_a_clear_error():
    with pytest.raises(ValueError, match="none of the 3 images is labelled benign or malignant"):
        fit_site_threshold([0.2, 0.1, 0.3], [0, 0, 0])
    images, folds, _ = synthetic_site(n_abnormal=0, n_normal=10)
    with pytest.raises(ValueError, match="abnormal rate is 0"):
        evaluate_site_threshold(images, folds, samples=50)
    with pytest.raises(ValueError, match="none of the 2 images has a detection"):
        fit_site_threshold([0.0, 0.0], [1, 0])
    with pytest.raises(ValueError, match="rule must be one of"):
        fit_site_threshold([0.5], [1], "magic")


@pytest.mark.parametrize("rule", ["rate", "prior_shift"])
def test_cross_fitting_never_uses_the_held_out_folds_labels(rule):
    rng = np.random.default_rng(7)
    n = 120
    scores = rng.uniform(0.05, 0.95, n)
    labels = rng.integers(0, 3, n)
    folds = np.arange(n) % 4
    taus, fits = cross_fit(scores, labels, folds, rule)
    assert sorted(fits) == [0, 1, 2, 3] and all(fits[k]["images"] == n - np.sum(folds == k) for k in fits)
    for k in range(4):
        held = folds == k
        changed_labels, changed_scores = labels.copy(), scores.copy()
        changed_labels[held] = np.where(labels[held] == 0, 2, 0)  # flip the held-out fold's labels ...
        changed_scores[held] = rng.uniform(0.05, 0.95, held.sum())  # ... and its scores
        new_taus, _ = cross_fit(changed_scores, changed_labels, folds, rule)
        np.testing.assert_array_equal(new_taus[held], taus[held])  # its own threshold does not move
        assert not np.allclose(new_taus[~held], taus[~held])  # the others' do: the change was seen there
    with pytest.raises(ValueError, match="at least two folds"):
        cross_fit(scores, labels, np.zeros(n, int), rule)


def test_site_folds_match_files_and_refuse_bad_tables():
    images, folds, table = synthetic_site(n_abnormal=10, n_normal=5)
    names, labels = [i["file_name"] for i in images], [i["image_label"] for i in images]
    np.testing.assert_array_equal(site_folds(names, labels, table), folds)
    inner = site_folds(names, labels, table, inner_folds=3, seed=0)
    assert sorted(np.unique(inner).tolist()) == [0, 1, 2]
    wrong = dict(table, **{"benign/case000.png": (2, 0, 0)})
    with pytest.raises(ValueError, match="disagree on the image label of 1 images"):
        site_folds(names, labels, wrong)
    with pytest.raises(ValueError, match="1 of 16 images are not in the table.*case099"):
        site_folds(names + ["/x/benign/case099.png"], labels + [1], table, source="the table")
    one_fold = {k: (v[0], v[1], 2) for k, v in table.items()}
    with pytest.raises(ValueError, match="all lie in fold 2.*--inner-folds"):
        site_folds(names, labels, one_fold)


def test_run_names():
    assert run_names(["/o/cv/a/fold0/breast/inference", "/o/cv/b/fold1/breast"]) == ["a/fold0/breast",
                                                                                    "b/fold1/breast"]
    assert run_names(["/o/cv/a/fold0/inference"]) == ["fold0"]


def test_tool_writes_the_threshold_and_the_rescored_outcomes(tmp_path, capsys):
    images, _, table = synthetic_site(seed=1)
    run = tmp_path / "cv" / "strong" / "fold0" / "site" / "inference"
    run.mkdir(parents=True)
    write_detections(str(run), images)
    (tmp_path / "meta").mkdir()
    with open(tmp_path / "meta" / "folds.csv", "w") as f:
        f.write("file_name,image_label,group,fold\n")
        f.writelines(f"{name},{label},{group},{fold}\n" for name, (label, group, fold) in table.items())
    assert read_folds_csv(str(tmp_path / "meta" / "folds.csv")) == table
    from wssdl_d2.cli import site_threshold as tool  # tools/site_threshold.py, wssdl-site-threshold
    out = tmp_path / "out"
    argv = [str(run.parent), "--site-folds", str(tmp_path / "meta" / "folds.csv"), "--out", str(out),
            "--samples", "100"]
    results = tool.run(argv)
    printed = capsys.readouterr().out
    assert "deploy WSSDL.EVAL.SCORE_THRESH" in printed and "| site | " in printed
    saved = json.loads((out / "site" / "site_threshold.json").read_text())
    assert saved["rule"] == "rate" and len(saved["per_image_tau"]) == 50
    assert load_site_threshold(str(out / "site" / "site_threshold.json")) == pytest.approx(
        results["site"]["deploy"]["tau"])
    columns = read_per_image(str(out / "site"))
    assert columns["hit_any"][columns["has_mass"]].mean() >= 0.95  # re-scored at the site threshold (at 0.5: 0)
    assert (out / "summary.md").read_text().count("\n| site |") == 1
    with pytest.raises(FileExistsError, match="summary.md exists; pass --overwrite"):
        tool.run(argv)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "score_thresh": 1.5}))
    with pytest.raises(ValueError, match=f"{bad}: score_thresh 1.5"):
        load_site_threshold(str(bad))


def test_a_site_without_boxes_still_gets_its_threshold():
    images, folds, _ = synthetic_site(seed=2)
    for image in images:
        image["gt_boxes"], image["gt_classes"] = [], []  # diagnoses only: what a new site has
    result = evaluate_site_threshold(images, folds, samples=50)
    assert 0.15 <= result["deploy"]["tau"] <= 0.35 and result["deploy"]["reachable"]
    assert np.isnan(result["site"]["CorLoc"]["value"]) and result["counts"]["mass_images"] == 0


def test_a_cross_validation_row_pools_its_held_out_folds(tmp_path):
    """``adapted_n0/fold<k>/inference``: each fold's detections come from that fold's model; the row reads as one
    run with every image once, and an image in two folds is refused."""
    images, folds, table = synthetic_site(seed=2)
    row = tmp_path / "adapted_n0"
    for k in range(5):
        (row / f"fold{k}" / "inference").mkdir(parents=True)
        write_detections(str(row / f"fold{k}" / "inference"), [im for im, f in zip(images, folds) if f == k])
    folder, pooled = read_run_detections(str(row))
    assert folder == str(row) and sorted(i["file_name"] for i in pooled) == sorted(i["file_name"] for i in images)
    result = evaluate_site_threshold(pooled, site_folds([i["file_name"] for i in pooled],
                                                        [i["image_label"] for i in pooled], table), samples=50)
    assert result["site"]["CorLoc"]["value"] >= 95  # the same fix as on the un-split run
    single, just_one = read_run_detections(str(row / "fold3"))
    assert single == str(row / "fold3" / "inference") and len(just_one) == int((folds == 3).sum())
    (row / "fold5" / "inference").mkdir(parents=True)
    write_detections(str(row / "fold5" / "inference"), images[:1])
    with pytest.raises(ResultsError, match="is in fold0 and fold5"):
        read_run_detections(str(row))
    with pytest.raises(ResultsError, match="no corloc_detections.json"):
        read_run_detections(str(tmp_path / "empty"))
