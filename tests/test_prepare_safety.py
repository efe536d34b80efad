"""Preparation and training refuse what they would otherwise silently get wrong: a BUSI tree without any image,
two images of one name, an --out that already holds a preparation (replaced only with --overwrite, and then only
the preparation's own files), and a zero-byte image listed in a dataset (refused before iteration 0)."""
import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from PIL import Image

from wssdl_d2.data import DatasetError, register_wssdl_json
from wssdl_d2.data.busi import read_busi
from wssdl_d2.data.prepare import prepare_pool
from wssdl_d2.engine import WSSDLTrainer


def _tool(*args):
    """tools/prepare_busi.py (wssdl_d2.cli.prepare_busi) in this process: what it printed on stderr when it
    stopped (None when it succeeded)."""
    from wssdl_d2.cli import prepare_busi

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            prepare_busi.main(list(args))
    except SystemExit as stop:
        return errors.getvalue().strip() or str(stop.code)
    return None


def test_busi_tree_with_only_empty_class_folders_is_refused(tmp_path):
    root = tmp_path / "busi"
    for name in ("benign", "malignant", "normal"):
        (root / name).mkdir(parents=True)
    (root / "benign" / "notes.txt").write_text("no scans yet")
    with pytest.raises(DatasetError, match=r"busi: no image in the class folders benign/, malignant/, normal/"):
        read_busi(str(root), progress=False)  # before: [] and a preparation of 0 images, exit status 0
    message = _tool("--root", str(root), "--out", str(tmp_path / "out"))
    assert message and "no image in the class folders" in message and str(root) in message
    assert not (tmp_path / "out" / "val.json").exists()


def test_two_images_of_one_name_are_refused_naming_both(tmp_path):
    folder = tmp_path / "busi" / "benign"
    folder.mkdir(parents=True)
    image = np.full((32, 40), 90, np.uint8)
    mask = np.zeros((32, 40), np.uint8)
    mask[5:10, 5:12] = 255
    Image.fromarray(image).save(folder / "x.png")
    Image.fromarray(image).save(folder / "x.jpg")
    Image.fromarray(mask).save(folder / "x_mask.png")
    with pytest.raises(DatasetError) as err:
        read_busi(str(tmp_path / "busi"), progress=False)  # before: x.png silently dropped, x.jpg kept
    assert f"{folder / 'x.png'}: two images named 'x': x.jpg and x.png" in str(err.value)


@pytest.fixture
def busi_copy(phantom_root, tmp_path):
    root = tmp_path / "busi"
    shutil.copytree(phantom_root / "images", root)
    return root


def test_prepare_into_an_earlier_preparation_needs_overwrite_and_keeps_other_files(busi_copy, tmp_path):
    out = tmp_path / "prepared"
    assert _tool("--root", str(busi_copy), "--out", str(out), "--strong-fraction", "0.1", "0.5",
                 "--val-fraction", "0.25") is None
    first = (out / "val.json").read_bytes()
    (out / "notes.txt").write_text("mine")
    (out / "meta" / "my_list.txt").write_text("mine too")
    (out / "mine.json").write_text(json.dumps({"images": []}))
    # before: the second preparation silently replaced the first
    message = _tool("--root", str(busi_copy), "--out", str(out), "--strong-fraction", "0.2", "--val-fraction", "0.5")
    assert message and "already holds a preparation" in message and "--overwrite" in message
    assert (out / "val.json").read_bytes() == first and (out / "train_strong_10.json").exists()
    assert _tool("--root", str(busi_copy), "--out", str(out), "--strong-fraction", "0.2", "--val-fraction", "0.5",
                 "--overwrite") is None
    assert (out / "val.json").read_bytes() != first
    assert (out / "train_strong_20.json").exists()
    assert not (out / "train_strong_10.json").exists() and not (out / "meta" / "strong_50.txt").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "meta" / "my_list.txt").read_text() == "mine too"
    assert (out / "mine.json").exists()
    assert _tool("--root", str(busi_copy), "--out", str(out / "notes.txt")) == \
        f"error: --out {out / 'notes.txt'} is a file, not a folder"


def test_a_zero_byte_image_is_refused_before_iteration_0(busi_copy, tmp_path, tiny_cfg):
    out = tmp_path / "zero"
    prepare_pool(busi_copy, out, strong_fractions=(1.0,), val_fraction=0.25, seed=0, name="zero", progress=False,
                 log=lambda *a: None)
    data = json.loads((out / "train_strong_100.json").read_text())
    empty = busi_copy / data["images"][0]["file_name"]
    empty.write_bytes(b"")
    if "testzero_train" not in DatasetCatalog.list():
        register_wssdl_json("testzero_train", str(out / "train_strong_100.json"))
    cfg = tiny_cfg(**{"DATASETS.TRAIN": "('testzero_train',)", "WSSDL.STRONG_PER_BATCH": "1",
                      "WSSDL.WEAK_PER_BATCH": "0"})
    # before: the loader was built and training crashed when it first reached the file
    with pytest.raises(DatasetError, match=re.escape(f"{empty}: image file is empty (0 bytes)")):
        WSSDLTrainer.build_train_loader(cfg)
