"""A new site's data (prepare_pool / tools/prepare_busi.py --test-all --strong-count): every scan in test.json with
its boxes, folds over the same scans, and N boxed scans per training part, nested, chosen among scans with boxes."""
import os
import subprocess
import sys

import numpy as np
import pytest

from wssdl_d2.data.phantom import write_phantom_dataset
from wssdl_d2.data.prepare import prepare_pool
from wssdl_d2.data.splits import strong_subset_count
from wssdl_d2.data.wssdl_json import load_wssdl_json

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.fixture(scope="module")
def site_images(tmp_path_factory):
    images = tmp_path_factory.mktemp("site") / "images"
    write_phantom_dataset(images, counts=(4, 14, 12), height=64, width=80, seed=5)
    return images


def _names(path):
    return {d["file_name"] for d in load_wssdl_json(str(path))}


def test_strong_subset_count_is_nested_proportional_and_boxed_only():
    labels = np.repeat([0, 1, 2], [10, 60, 30])
    has_boxes = labels > 0
    chosen = {n: strong_subset_count(labels, has_boxes, n, seed=3) for n in (0, 9, 30, 90)}
    assert [int(c.sum()) for c in chosen.values()] == [0, 9, 30, 90]
    assert not any(c[labels == 0].any() for c in chosen.values())  # normal scans have nothing to box
    assert np.all(chosen[9] <= chosen[30]) and np.all(chosen[30] <= chosen[90])  # nested
    assert np.bincount(labels[chosen[30]], minlength=3).tolist() == [0, 20, 10]  # in proportion 60 : 30
    assert np.array_equal(chosen[30], strong_subset_count(labels, has_boxes, 30, seed=3))
    assert not np.array_equal(chosen[30], strong_subset_count(labels, has_boxes, 30, seed=4))
    with pytest.raises(ValueError, match="91 strong images asked, but only 90"):
        strong_subset_count(labels, has_boxes, 91)


def test_test_all_and_strong_counts(site_images, tmp_path):
    out = tmp_path / "site"
    report = prepare_pool(site_images, out, strong_fractions=(), val_fraction=0.0, seed=0, name="site", progress=False,
                          log=lambda *a: None, folds=3, strong_counts=(0, 4, 8), test_all=True)
    test = load_wssdl_json(str(out / "test.json"))
    assert len(test) == report["images"] == 30
    assert all(d["supervision"] == "strong" for d in test)
    assert sum(bool(d["annotations"]) for d in test) == 26  # every lesion keeps its box
    assert not (out / "train_all.json").exists() and not (out / "val.json").exists()
    vals = [_names(out / f"fold{k}" / "val.json") for k in range(3)]
    assert set().union(*vals) == {d["file_name"] for d in test} and sum(map(len, vals)) == 30
    for k in range(3):
        fold = out / f"fold{k}"
        train = _names(fold / "train_all.json")
        assert not train & vals[k]
        assert _names(fold / "train_weak_n0.json") == train and not (fold / "train_strong_n0.json").exists()
        strong4, strong8 = _names(fold / "train_strong_n4.json"), _names(fold / "train_strong_n8.json")
        assert len(strong4) == 4 and len(strong8) == 8 and strong4 <= strong8
        assert _names(fold / "train_weak_n8.json") == train - strong8
        for d in load_wssdl_json(str(fold / "train_strong_n8.json")):
            assert d["annotations"]
        assert all(not d["annotations"] for d in load_wssdl_json(str(fold / "train_weak_n8.json")))
    with pytest.raises(ValueError, match="val_fraction"):
        prepare_pool(site_images, tmp_path / "bad", val_fraction=0.2, progress=False, log=lambda *a: None,
                     test_all=True)


def test_cli(site_images, tmp_path):
    tool = os.path.join(REPO, "tools", "prepare_busi.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bad = subprocess.run([sys.executable, tool, "--root", str(site_images), "--out", str(tmp_path / "a"),
                          "--test-all"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "--val-fraction 0" in bad.stderr
    ok = subprocess.run([sys.executable, tool, "--root", str(site_images), "--out", str(tmp_path / "b"),
                         "--val-fraction", "0.25", "--strong-count", "0", "3"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    names = sorted(os.listdir(tmp_path / "b"))
    assert {"train_weak_n0.json", "train_strong_n3.json", "train_weak_n3.json", "val.json"} <= set(names)
    assert not any(n.startswith("train_strong_1") for n in names)  # no default fractions beside counts
    assert len(_names(tmp_path / "b" / "train_strong_n3.json")) == 3


def test_phantom_site_b_same_anatomy_other_scanner(tmp_path):
    import cv2

    from wssdl_d2.data.phantom import SITES, generate_image, site_profile

    assert site_profile(None) == SITES["a"] == site_profile("a")
    with pytest.raises(ValueError, match="unknown phantom site 'c'"):
        site_profile("c")
    for label in (1, 2):
        a = generate_image(np.random.default_rng(3), label, 96, 128, site="a")
        b = generate_image(np.random.default_rng(3), label, 96, 128, site="b")
        assert len(a.masks) == len(b.masks) == 1 and np.array_equal(a.masks[0], b.masks[0])
        assert a.image.shape == b.image.shape and a.image.dtype == b.image.dtype == np.uint8
        mask = a.masks[0]
        contrast = [float(im[~mask].mean() - im[mask].mean()) for im in (a.image, b.image)]
        assert b.image.mean() > a.image.mean() + 20  # another gain / dynamic range
        assert 0 < contrast[1] < contrast[0]  # fainter masses
        # coarser speckle: neighbouring pixels are more alike
        corr = [np.corrcoef(im[:, :-1].ravel(), im[:, 1:].ravel())[0, 1] for im in (a.image, b.image)]
        assert corr[1] > corr[0] + 0.1
    tool = os.path.join(REPO, "tools", "make_phantom.py")
    done = subprocess.run([sys.executable, tool, "--out", str(tmp_path / "site_b"), "--site", "b", "--counts", "2",
                           "4", "4", "--size", "48", "64", "--test-all", "--val-fraction", "0", "--folds", "2",
                           "--strong-count", "0", "2"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert len(load_wssdl_json(str(tmp_path / "site_b" / "test.json"))) == 10
    assert (tmp_path / "site_b" / "fold1" / "train_strong_n2.json").exists()
    image = cv2.imread(str(tmp_path / "site_b" / "images" / "benign" / "benign (1).png"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (48, 64)


def test_site_scans_without_masks_are_weak(site_images, tmp_path):
    import shutil

    from wssdl_d2.data.busi import read_busi
    from wssdl_d2.data.errors import DatasetError

    site = tmp_path / "diagnoses"
    shutil.copytree(site_images, site)
    outlined = sorted((site / "benign").glob("*_mask.png"))[:3] + sorted((site / "malignant").glob("*_mask.png"))[:2]
    for mask in set(site.rglob("*_mask*.png")) - set(outlined):
        mask.unlink()
    with pytest.raises(DatasetError, match="no mask file"):
        read_busi(str(site), progress=False)
    records = read_busi(str(site), progress=False, require_masks=False)
    assert len(records) == 30 and sum(bool(r.boxes) for r in records) == 5
    out = tmp_path / "prepared"
    prepare_pool(site, out, strong_fractions=(), val_fraction=0.0, seed=0, name="diag", progress=False,
                 log=lambda *a: None, strong_counts=(4,), require_masks=False)
    strong = load_wssdl_json(str(out / "train_strong_n4.json"))
    assert len(strong) == 4 and all(d["annotations"] for d in strong)
    assert len(load_wssdl_json(str(out / "train_weak_n4.json"))) == 26
    train_all = load_wssdl_json(str(out / "train_all.json"))  # a mass scan without an outline is never "no mass"
    assert all(d["annotations"] or d["supervision"] == "weak" or d["image_label"] == 0 for d in train_all)
    with pytest.raises(ValueError, match="6 strong images asked, but only 5"):
        prepare_pool(site, tmp_path / "too_many", strong_fractions=(), val_fraction=0.0, progress=False,
                     log=lambda *a: None, strong_counts=(6,), require_masks=False)
