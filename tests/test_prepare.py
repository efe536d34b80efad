"""prepare_pool on a generated BUSI-layout tree: splits, near-duplicates, conflicts, nested strong subsets."""
import json

import pytest
from conftest import read_rows_grouped_on_one_side

from wssdl_d2.data.phantom import write_phantom_dataset
from wssdl_d2.data.prepare import prepare_pool
from wssdl_d2.data.splits import split_by_groups, strong_subset
from wssdl_d2.data.wssdl_json import load_wssdl_json


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    write_phantom_dataset(root / "images", counts=(8, 16, 16), height=64, width=80, seed=1,
                          duplicate_fraction=0.3, conflicting_duplicates=2)
    return root


def _prepare(pool, out, **kwargs):
    return prepare_pool(pool / "images", out, strong_fractions=(0.1, 0.5, 1.0), val_fraction=0.25, seed=0,
                        progress=False, log=lambda *a: None, **kwargs)


def test_splits_keep_near_duplicates_together(pool, tmp_path):
    report = _prepare(pool, tmp_path)
    read_rows_grouped_on_one_side(tmp_path / "meta" / "groups.csv", "split", report)
    # the two benign images copied into the malignant folder make two conflicting groups, excluded
    assert len(report["conflicting_groups"]) == 2
    excluded = sum(len(group) for group in report["conflicting_groups"])
    assert excluded >= 4 and report["split_images"]["excluded"] == excluded
    assert all(any(f.startswith("malignant") for f in g) and any(f.startswith("benign") for f in g)
               for g in report["conflicting_groups"])
    val = {d["file_name"] for d in load_wssdl_json(tmp_path / "val.json")}
    train = {d["file_name"] for d in load_wssdl_json(tmp_path / "train_all.json")}
    assert val and train and not val & train
    assert len(val) + len(train) + excluded == report["images"]


def test_strong_weak_files_and_nesting(pool, tmp_path):
    _prepare(pool, tmp_path)
    train = load_wssdl_json(tmp_path / "train_all.json")
    strong = {f: {d["file_name"] for d in load_wssdl_json(tmp_path / f"train_strong_{p}.json")} for f, p in
              ((0.1, 10), (0.5, 50), (1.0, 100))}
    assert strong[0.1] < strong[0.5] < strong[1.0] == {d["file_name"] for d in train}
    weak = load_wssdl_json(tmp_path / "train_weak_50.json")
    assert all(d["supervision"] == "weak" and d["annotations"] == [] for d in weak)
    assert {d["file_name"] for d in weak} | strong[0.5] == strong[1.0]
    assert not (tmp_path / "train_weak_100.json").exists()
    lesion = [d for d in load_wssdl_json(tmp_path / "train_strong_50.json") if d["image_label"] > 0]
    assert lesion and all(d["annotations"] for d in lesion)
    assert all(a["category_id"] == d["image_label"] - 1 for d in lesion for a in d["annotations"])


def test_reproducible_from_seed(pool, tmp_path):
    _prepare(pool, tmp_path / "a")
    _prepare(pool, tmp_path / "b")
    for name in ("val.json", "train_strong_10.json", "meta/groups.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    report = json.loads((tmp_path / "a" / "meta" / "report.json").read_text())
    assert report["seed"] == 0


def test_keep_conflicting(pool, tmp_path):
    report = _prepare(pool, tmp_path, keep_conflicting=True)
    assert report["split_images"]["excluded"] == 0


def test_split_and_subset_functions():
    labels = [1] * 10 + [2] * 10
    groups = list(range(20))
    a = split_by_groups(labels, groups, val_fraction=0.2, seed=5)
    assert a == split_by_groups(labels, groups, val_fraction=0.2, seed=5)
    assert a.count("val") == 4 and a[:10].count("val") == 2
    small, large = strong_subset(labels, 0.2, seed=3), strong_subset(labels, 0.6, seed=3)
    assert small.sum() == 4 and large.sum() == 12 and (large[small]).all()
    with pytest.raises(ValueError):
        split_by_groups(labels, groups, val_fraction=0.6, test_fraction=0.5)


def _groups_by_closure(hashes, max_distance):
    """Reference grouping: repeated relaxation of the near-duplicate relation (no union-find, no graph library)."""
    import numpy as np

    n = len(hashes)
    near = (hashes[:, None, :] != hashes[None, :, :]).sum(2) <= max_distance
    group = np.arange(n)
    changed = True
    while changed:
        merged = np.where(near, group[None, :], n).min(axis=1)
        changed = bool((merged != group).any())
        group = merged
    first = {}
    return np.array([first.setdefault(g, len(first)) for g in group.tolist()])


def test_near_duplicate_groups_are_the_connected_components_in_order_of_first_appearance():
    import numpy as np

    from wssdl_d2.data.near_duplicates import group_near_duplicates

    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(1, 40))
        base = rng.random((max(1, n // 3), 64)) < 0.5
        hashes = base[rng.integers(0, len(base), n)] ^ (rng.random((n, 64)) < rng.uniform(0, 0.15))
        for distance in (0, 4, 12):
            np.testing.assert_array_equal(group_near_duplicates(hashes, distance), _groups_by_closure(hashes, distance))
    chain = np.zeros((3, 64), bool)
    chain[1, :5] = True
    chain[2, :10] = True  # 0-1 and 1-2 are near (5 bits), 0-2 are not (10 bits): one group through the chain
    assert group_near_duplicates(chain, 6).tolist() == [0, 0, 0]
    assert group_near_duplicates(chain[[2, 0]], 6).tolist() == [0, 1]
    assert group_near_duplicates(np.zeros((0, 64), bool)).tolist() == []
