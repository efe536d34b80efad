"""K-fold cross-validation datasets (prepare_pool(folds=K), tools/make_phantom.py --folds): folds are disjoint and
cover the usable pool, keep near-duplicate groups whole, are stratified by label, nest their strong subsets inside
their training part, and are registered as <name>_fold<k>_<split>."""
import json
import os
from collections import Counter

import numpy as np
import pytest
from conftest import read_rows_grouped_on_one_side
from detectron2.data import DatasetCatalog

from wssdl_d2.data import register_datasets_under
from wssdl_d2.data.folds import fold_dataset_name
from wssdl_d2.data.phantom import write_phantom_dataset
from wssdl_d2.data.prepare import prepare_pool
from wssdl_d2.data.splits import assign_folds
from wssdl_d2.data.wssdl_json import load_wssdl_json

K = 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("cvdatasets")
    out = base / "cvpool"
    write_phantom_dataset(out / "images", counts=(9, 15, 15), height=64, width=80, seed=3,
                          duplicate_fraction=0.3, conflicting_duplicates=1)
    report = prepare_pool(out / "images", out, strong_fractions=(0.1, 0.3, 1.0), val_fraction=0.25, seed=0,
                          name="cvpool", progress=False, log=lambda *a: None, folds=K)
    return base, out, report


def _files(path):
    return {d["file_name"] for d in load_wssdl_json(path)}


def test_assign_folds_is_stratified_grouped_and_seeded():
    labels = np.repeat([0, 1, 2], [30, 60, 45])
    groups = np.arange(len(labels))
    groups[1::7] = groups[0::7][: len(groups[1::7])]  # pairs of near-duplicates (same label: neighbours)
    groups = np.asarray([g if labels[g] == labels[i] else i for i, g in enumerate(groups)])
    folds = assign_folds(labels, groups, 5, seed=1, exclude={int(groups[-1])})
    assert folds[-1] == -1
    for g in set(groups.tolist()):
        assert len(set(folds[groups == g].tolist())) == 1
    for label in (0, 1, 2):
        counts = np.bincount(folds[(labels == label) & (folds >= 0)], minlength=5)
        assert counts.max() - counts.min() <= 2, (label, counts)  # a group holds at most 2 images
    assert np.array_equal(folds, assign_folds(labels, groups, 5, seed=1, exclude={int(groups[-1])}))
    assert not np.array_equal(folds, assign_folds(labels, groups, 5, seed=2, exclude={int(groups[-1])}))
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        assign_folds(labels, groups, 1)


def test_folds_are_disjoint_cover_the_pool_and_keep_groups(prepared):
    _, out, report = prepared
    vals = [_files(out / f"fold{k}" / "val.json") for k in range(K)]
    usable = _files(out / "train_all.json") | _files(out / "val.json")
    assert sum(map(len, vals)) == len(set().union(*vals)) == len(usable)  # disjoint
    assert set().union(*vals) == usable  # cover train + val (conflicting groups excluded)
    for k in range(K):
        train = _files(out / f"fold{k}" / "train_all.json")
        assert not train & vals[k] and train | vals[k] == usable
    rows = read_rows_grouped_on_one_side(out / "meta" / "folds.csv", "fold", report)
    excluded = {f for g in report["conflicting_groups"] for f in g}
    assert excluded and {r["file_name"] for r in rows if r["fold"] == "-1"} == excluded
    assert report["folds"]["num_folds"] == K


def test_folds_are_stratified_by_label(prepared):
    _, out, _ = prepared
    per_fold = [Counter(d["image_label"] for d in load_wssdl_json(out / f"fold{k}" / "val.json")) for k in range(K)]
    for label in (0, 1, 2):
        counts = [c[label] for c in per_fold]
        assert max(counts) - min(counts) <= 2, (label, counts)


def test_strong_subsets_are_nested_inside_each_training_part(prepared):
    _, out, _ = prepared
    for k in range(K):
        folder = out / f"fold{k}"
        train = _files(folder / "train_all.json")
        strong = {p: _files(folder / f"train_strong_{p}.json") for p in (10, 30, 100)}
        assert strong[10] < strong[30] < strong[100] == train
        weak = load_wssdl_json(folder / "train_weak_30.json")
        assert all(d["supervision"] == "weak" and not d["annotations"] for d in weak)
        assert {d["file_name"] for d in weak} | strong[30] == train and not {d["file_name"] for d in weak} & strong[30]
        lines = (folder / "meta" / "strong_30.txt").read_text().splitlines()
        assert {str(out / "images" / line) for line in lines} == strong[30]


def test_each_fold_has_an_inner_split_of_its_training_part_only(prepared):
    base, out, report = prepared
    group_of = {r["file_name"]: r["group"] for r in read_rows_grouped_on_one_side(out / "meta" / "folds.csv", "fold",
                                                                                   report)}
    for k in range(K):
        folder = out / f"fold{k}"
        train, held_out = _files(folder / "train_all.json"), _files(folder / "val.json")
        inner_val, inner_train = _files(folder / "inner_val.json"), _files(folder / "inner_train_all.json")
        # the inner split partitions the training part; the held-out fold is never in it
        assert inner_val and inner_train and not inner_val & inner_train and inner_val | inner_train == train
        assert not (inner_val | inner_train) & held_out
        # near-duplicate groups stay whole across the inner split too
        rel = {f: os.path.relpath(f, out / "images") for f in train}
        assert not {group_of[rel[f]] for f in inner_val} & {group_of[rel[f]] for f in inner_train}
        assert 0.1 <= len(inner_val) / len(train) <= 0.35
        # strong subsets of the inner training part, nested like the fold's own
        strong = {p: _files(folder / f"inner_train_strong_{p}.json") for p in (10, 30, 100)}
        assert strong[10] < strong[30] < strong[100] == inner_train
        counts = report["folds"]["images"][f"fold{k}"]
        assert counts["inner_val"] == len(inner_val)


def test_strong_counts_tell_images_with_a_box_from_normal_images(prepared):
    _, out, report = prepared
    for k in range(K):
        counts = report["folds"]["images"][f"fold{k}"]
        for stem in ("train_strong_30", "inner_train_strong_30"):
            dicts = load_wssdl_json(out / f"fold{k}" / f"{stem}.json")
            with_box = sum(bool(d["annotations"]) for d in dicts)
            normal = sum(d["image_label"] == 0 for d in dicts)
            assert normal > 0 and counts[f"{stem}_with_box"] == with_box == len(dicts) - normal
            assert counts[f"{stem}_normal"] == normal


def test_fold_datasets_are_registered_and_load_their_images(prepared):
    base, out, _ = prepared
    names = register_datasets_under(str(base))
    assert fold_dataset_name("cvpool", 2, "train_strong_30") == "cvpool_fold2_train_strong_30"
    assert {"cvpool_val", "cvpool_fold0_val", "cvpool_fold2_train_weak_30", "cvpool_fold1_train_all"} <= set(names)
    dicts = DatasetCatalog.get("cvpool_fold1_val")
    assert dicts and all(os.path.isfile(d["file_name"]) for d in dicts)
    info = json.loads((out / "fold1" / "val.json").read_text())["info"]
    assert info["image_root"] == "../images"  # relocatable: relative to the fold folder


def test_stale_folds_are_refused_without_overwrite(prepared, tmp_path):
    _, out, _ = prepared
    pool = out / "images"
    target = tmp_path / "pool"
    prepare_pool(pool, target, strong_fractions=(0.3,), folds=3, progress=False, log=lambda *a: None)
    with pytest.raises(FileExistsError, match="fold2"):
        prepare_pool(pool, target, strong_fractions=(0.3,), folds=2, progress=False, log=lambda *a: None)
    prepare_pool(pool, target, strong_fractions=(0.3,), folds=2, progress=False, log=lambda *a: None, overwrite=True)
    assert not (target / "fold2").exists() and (target / "fold1" / "val.json").exists()
