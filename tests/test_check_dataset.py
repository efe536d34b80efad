"""The dataset checker finds every planted problem at once, in each format; the clean phantom passes; the CLI's
exit status follows; training refuses bad data naming the file."""
import copy
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog

from wssdl_d2.data import DatasetError, register_wssdl_json
from wssdl_d2.data.dataset_check import check_dataset, split_role
from wssdl_d2.data.voc import write_voc_annotation
from wssdl_d2.engine import WSSDLTrainer


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args):
    """tools/check_dataset.py as a user runs it, its output redirected (not a terminal)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "check_dataset.py")] + args,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _kinds(report):
    return sorted({p.kind for p in report.problems})


def _find(report, kind, text):
    return [p for p in report.problems if p.kind == kind and text in str(p)]


def test_clean_phantom_has_no_problem(phantom_root):
    report = check_dataset(phantom_root, progress=False)
    assert report.ok, [str(p) for p in report.problems]
    assert report.format == "prepared" and report.splits["val"] > 0
    assert report.images == report.splits["train_all"] + report.splits["val"]
    assert _cli([str(phantom_root), "--quiet"]).returncode == 0


@pytest.fixture
def bad_prepared(phantom_root, tmp_path):
    """A copy of the phantom's dataset files with one planted problem of each kind."""
    out = tmp_path / "bad"
    images = out / "images"
    shutil.copytree(phantom_root / "images", images)
    val = json.loads((phantom_root / "val.json").read_text())
    train = json.loads((phantom_root / "train_all.json").read_text())
    for data in (val, train):
        data["info"]["image_root"] = "images"
    im = {i["file_name"]: i for i in train["images"]}
    benign = next(f for f, i in im.items() if i["image_label"] == 1)
    normal = next(f for f, i in im.items() if i["image_label"] == 0)
    malignant = next(f for f, i in im.items() if i["image_label"] == 2)
    # corrupt (truncated) image, wrong recorded size, missing file
    (images / malignant).write_bytes((images / malignant).read_bytes()[:80])
    im[normal]["width"] += 10
    extra = dict(im[benign], id=1000, file_name="benign/absent.png")
    # duplicate id, a file listed twice, unknown label, unknown supervision
    twin = dict(im[benign], id=1001)
    dup_id = dict(im[normal], id=im[benign]["id"], file_name="normal/dup-id.png")
    odd = dict(im[normal], id=1002, image_label=5, supervision="maybe")
    train["images"] += [extra, twin, dup_id, odd]
    bid, nid = im[benign]["id"], im[normal]["id"]
    w = im[benign]["width"]
    train["annotations"] += [
        {"id": 900, "image_id": bid, "category_id": 1, "bbox": [w - 5, 10, 30, 20]},  # outside
        {"id": 901, "image_id": bid, "category_id": 1, "bbox": [10, 10, 0, 20]},  # empty
        {"id": 902, "image_id": bid, "category_id": 2, "bbox": [10, 10, 20, 20]},  # malignant box, benign image
        {"id": 903, "image_id": nid, "category_id": 1, "bbox": [10, 10, 20, 20]},  # box on a normal image
        {"id": 904, "image_id": 4242, "category_id": 1, "bbox": [1, 1, 2, 2]},  # no such image
        {"id": 905, "image_id": bid, "category_id": 7, "bbox": [1, 1, 2, 2]},  # unknown category
        {"id": 906, "image_id": bid, "category_id": 1, "bbox": "1 1 2 2"},  # malformed
    ]
    # leak: a train image in val; a near-duplicate (brightened copy) of a train image in val with another label
    val["images"].append(dict(copy.deepcopy(im[benign]), id=5000))
    near = cv2.imread(str(images / normal), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(images / "near.png"), np.clip(near.astype(int) + 3, 0, 255).astype(np.uint8))
    val["images"].append(dict(im[normal], id=5001, file_name="near.png", image_label=2, width=near.shape[1],
                              height=near.shape[0]))
    val["annotations"].append({"id": 5001, "image_id": 5001, "category_id": 2, "bbox": [10, 10, 20, 20]})
    (out / "val.json").write_text(json.dumps(val))
    (out / "train_all.json").write_text(json.dumps(train))
    (out / "broken.json").write_text(json.dumps(train)[:500])
    return out, {"benign": benign, "normal": normal, "malignant": malignant}


def test_every_planted_problem_is_reported(bad_prepared):
    out, files = bad_prepared
    report = check_dataset(out, progress=False)
    assert _kinds(report) == ["conflicting_labels", "corrupt_image", "duplicate", "format", "label", "leak",
                              "record", "size"]
    assert _find(report, "format", "broken.json: not valid JSON")
    assert _find(report, "corrupt_image", files["malignant"] + ": cannot read image")
    assert _find(report, "size", files["normal"] + ": image is 128x96 but the dataset says 138x96")
    assert _find(report, "record", "absent.png: image file not found")
    assert _find(report, "record", "image_label 5 is not 0, 1 or 2")
    assert _find(report, "record", "supervision 'maybe'")
    assert _find(report, "record", "box [123, 10, 30, 20] lies outside the 128x96 image " + files["benign"].split("/")[-1])
    assert _find(report, "record", "empty box [10, 10, 0, 20] in " + files["benign"].split("/")[-1])
    assert _find(report, "label", "box of class malignant on a benign image")
    assert _find(report, "label", "normal image with 1 box(es)")
    assert _find(report, "duplicate", "image id")
    assert _find(report, "duplicate", f"{files['benign']}: listed 2 times in this split")
    assert _find(report, "format", "image_id 4242 is not a (valid) image")
    assert _find(report, "format", "unknown category_id 7")
    assert _find(report, "format", "bbox must be [x, y, w, h] numbers, not '1 1 2 2'")
    leaks = [p for p in report.problems if p.kind == "leak"]
    assert any(files["benign"] in str(p) and "train/val" in p.message for p in leaks)
    assert any(p.related and "near-duplicate" in p.message for p in leaks)
    assert any("near.png" in str(p) and "malignant in val" in p.message and "normal in train_all" in p.message
               for p in report.problems if p.kind == "conflicting_labels")
    # one file only, without near-duplicate search: no leak can be seen, the file's own problems still are
    single = check_dataset(out / "val.json", max_hash_distance=None, progress=False)
    assert single.format == "json" and "leak" not in _kinds(single) and "format" not in _kinds(single)
    assert _find(single, "label", "strong benign image without a box")


def test_cli_exit_status_and_json_report(bad_prepared, tmp_path):
    out, _ = bad_prepared
    report_file = tmp_path / "report.json"
    proc = _cli([str(out), "--json-report", str(report_file)])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "\r" not in proc.stderr  # no progress bar frames in a redirected log
    printed = proc.stdout
    assert "problem(s)" in printed and "  leak (" in printed and "  corrupt_image (1):" in printed
    written = json.loads(report_file.read_text())
    assert written[0]["format"] == "prepared" and written[0]["counts"]["leak"] >= 2
    proc = _cli([str(tmp_path / "nowhere"), "--quiet"])
    assert proc.returncode == 2 and "error:" in proc.stderr


def test_voc_layout_all_problems(tmp_path):
    root = tmp_path / "voc"
    for sub in ("Annotations", "ImageSets/Main", "TIFFImages"):
        (root / sub).mkdir(parents=True)
    image = np.full((40, 50), 90, np.uint8)
    for k in range(4):
        cv2.imwrite(str(root / "TIFFImages" / f"im{k}.tif"), image)
        write_voc_annotation(root / "Annotations" / f"im{k}.xml", f"im{k}", 50, 40, 1 + k % 2, [(5, 5, 20, 20)])
    write_voc_annotation(root / "Annotations" / "wrong.xml", "wrong", 60, 40, 1, [(5, 5, 20, 20)])
    cv2.imwrite(str(root / "TIFFImages" / "wrong.tif"), image)
    (root / "Annotations" / "broken.xml").write_text("<annotation><size>")
    (root / "ImageSets/Main/s_train.txt").write_text("im0\nim1\nwrong\nbroken\nmissing\n")
    (root / "ImageSets/Main/ws_train.txt").write_text("im2\nim3\n")
    (root / "ImageSets/Main/test.txt").write_text("im3\n")
    report = check_dataset(root, max_hash_distance=None, progress=False)
    assert report.format == "voc" and report.splits == {"s_train": 3, "test": 1, "ws_train": 2}
    assert _find(report, "format", "broken.xml: malformed XML")
    assert _find(report, "format", "missing.xml: annotation file not found")
    assert _find(report, "size", "wrong.tif: image is 50x40 but the dataset says 60x40")
    assert _find(report, "leak", "im3.tif: image in more than one of test/train (test, ws_train)")
    # identical pixels but different files: a near-duplicate search links them all
    assert len(check_dataset(root, progress=False).problems) > len(report.problems)


def test_busi_layout_all_problems(tmp_path):
    root = tmp_path / "busi"
    for folder in ("benign", "malignant", "normal"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:15, 5:20] = 255
    for name in ("benign/benign (1)", "malignant/malignant (1)", "normal/normal (1)"):
        cv2.imwrite(str(root / f"{name}.png"), rng.integers(0, 255, (30, 40), dtype=np.uint8))
        cv2.imwrite(str(root / f"{name}_mask.png"), mask if "normal" not in name else mask * 0)
    cv2.imwrite(str(root / "benign" / "benign (1)_mask_1.png"), np.zeros((31, 40), np.uint8))  # wrong size
    cv2.imwrite(str(root / "benign" / "benign (2).png"), mask)  # no mask
    (root / "malignant" / "malignant (2).png").write_bytes(b"\x89PNG garbage")
    cv2.imwrite(str(root / "malignant" / "malignant (2)_mask.png"), mask)
    shutil.copy(root / "normal" / "normal (1).png", root / "malignant" / "malignant (3).png")  # same image
    cv2.imwrite(str(root / "malignant" / "malignant (3)_mask.png"), mask)
    report = check_dataset(root, progress=False)
    assert report.format == "busi" and report.splits == {"normal": 1, "benign": 2, "malignant": 3}
    assert _find(report, "format", "benign (1)_mask_1.png: mask is 40x31 (WxH) but its image is 40x30")
    assert _find(report, "format", "benign (2).png: no mask file")
    assert _find(report, "format", "malignant (2).png: cannot read image")
    conflict = _find(report, "conflicting_labels", "different image labels (malignant, normal)")
    assert len(conflict) == 1 and len(conflict[0].related) == 1


def test_split_roles():
    assert [split_role(s) for s in ("train_strong_20", "val", "test", "s_train", "ws_train", "test_normal")] == [
        "train", "val", "test", "train", "train", "test"]


def test_training_refuses_bad_data_naming_the_file(bad_prepared, tiny_cfg):
    out, files = bad_prepared
    data = json.loads((out / "val.json").read_text())
    data["images"] = [dict(i, file_name="benign/gone.png") for i in data["images"]
                      if i["file_name"] == files["benign"]]
    data["annotations"] = [{"id": 1, "image_id": data["images"][0]["id"], "category_id": 1,
                            "bbox": [10.0, 10.0, 40.0, 20.0]}]
    (out / "gone.json").write_text(json.dumps(data))
    data["images"][0]["file_name"] = files["benign"]
    data["annotations"][0]["bbox"] = [100.0, 10.0, 40.0, 20.0]
    (out / "outside.json").write_text(json.dumps(data))
    for name in ("gone", "outside"):
        if f"testcheck_{name}" not in DatasetCatalog.list():
            register_wssdl_json(f"testcheck_{name}", str(out / f"{name}.json"))
    with pytest.raises(DatasetError, match=r"outside\.json: annotations\[0\]: .* outside the 128x96 image benign \(1\)"):
        WSSDLTrainer.build_train_loader(tiny_cfg(**{"DATASETS.TRAIN": "('testcheck_outside',)"}))
    with pytest.raises(DatasetError, match=r"testcheck_gone \(.*gone\.json\): 1 problem.*\n"
                                           r".*images/benign/gone\.png: image file not found"):
        WSSDLTrainer.build_train_loader(tiny_cfg(**{"DATASETS.TRAIN": "('testcheck_gone',)"}))
