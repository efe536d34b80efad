"""The VOC-style reader and the COCO+supervision reader round-trip; bad input names the file."""
import json
import os

import cv2
import numpy as np
import pytest

from wssdl_d2.data import DatasetError, load_voc_wssdl, load_wssdl_json, write_wssdl_json
from wssdl_d2.data.busi import read_busi
from wssdl_d2.data.voc import read_voc_annotation, write_voc_annotation

IMAGES = [  # (id, label, boxes XYXY_ABS, no-mass regions)
    ("b1", 1, [[10, 12, 40, 30]], []),
    ("m1", 2, [[5, 6, 25, 44], [30, 30, 50, 45]], [[0, 0, 10, 10]]),
    ("n1", 0, [], [[20, 20, 60, 40]]),
]


def _write_voc(root, split="s_train"):
    os.makedirs(root / "TIFFImages")
    os.makedirs(root / "ImageSets" / "Main")
    for image_id, label, boxes, no_mass in IMAGES:
        cv2.imwrite(str(root / "TIFFImages" / f"{image_id}.tif"), np.full((48, 64), 100, np.uint8))
        write_voc_annotation(root / "Annotations" / f"{image_id}.xml", image_id, 64, 48, label, boxes, no_mass)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i[0] + "\n" for i in IMAGES))


def test_voc_round_trip(tmp_path):
    _write_voc(tmp_path)
    records = load_voc_wssdl(str(tmp_path), "s_train")
    assert [r["image_label"] for r in records] == [1, 2, 0]
    for record, (_, label, boxes, no_mass) in zip(records, IMAGES):
        assert record["supervision"] == "strong"
        assert [a["bbox"] for a in record["annotations"]] == boxes
        assert all(a["category_id"] == label - 1 for a in record["annotations"])
        assert record["no_mass_regions"] == no_mass  # __background__ boxes are not objects
        assert (record["width"], record["height"]) == (64, 48)


def test_voc_weak_split_has_no_boxes(tmp_path):
    _write_voc(tmp_path, split="ws_train")
    records = load_voc_wssdl(str(tmp_path), "ws_train")
    assert all(r["supervision"] == "weak" and r["annotations"] == [] for r in records)
    assert [r["image_label"] for r in records] == [1, 2, 0]


def test_coco_round_trip(tmp_path):
    images = [{"file_name": f"{i}.png", "width": 64, "height": 48, "supervision": s, "image_label": label,
               "boxes": boxes} for (i, label, boxes, _), s in zip(IMAGES, ("strong", "weak", "strong"))]
    write_wssdl_json(tmp_path / "d.json", images, image_root="imgs")
    records = load_wssdl_json(tmp_path / "d.json")
    assert [r["supervision"] for r in records] == ["strong", "weak", "strong"]
    assert [r["image_label"] for r in records] == [1, 2, 0]
    assert records[0]["file_name"] == os.path.join(str(tmp_path), "imgs", "b1.png")
    assert [a["bbox"] for a in records[0]["annotations"]] == [[10, 12, 40, 30]]
    assert records[1]["annotations"] == []  # weak: image label only
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["annotations"][0]["bbox"] == [10, 12, 30, 18]  # COCO XYWH on disk


def test_plain_coco_needs_supervision(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4, "image_label": 1}],
                                "annotations": [], "categories": [{"id": 1, "name": "benign"}]}))
    with pytest.raises(DatasetError, match="supervision"):
        load_wssdl_json(path)
    assert load_wssdl_json(path, default_supervision="weak")[0]["supervision"] == "weak"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"images": 3}', "no 'images' list"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4, "supervision": "strong", "image_label": 7}]}',
     "image_label 7"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4, "supervision": "strong", "image_label": 1}],'
     ' "categories": [{"id": 1, "name": "benign"}],'
     ' "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 2]}]}', "outside"),
    ('{"images": [], "categories": [{"id": 1, "name": "cyst"}]}', "unknown category 'cyst'"),
])
def test_bad_json_names_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        load_wssdl_json(path)
    assert str(path) in str(err.value)


def test_bad_voc_names_the_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><size><width>10</width>")
    with pytest.raises(DatasetError, match="malformed XML") as err:
        read_voc_annotation(bad)
    assert str(bad) in str(err.value)
    write_voc_annotation(tmp_path / "box.xml", "x", 10, 10, 1, [[2, 2, 30, 5]])
    with pytest.raises(DatasetError, match="outside"):
        read_voc_annotation(tmp_path / "box.xml")


def _busi_tree(root):
    for label in ("benign", "normal"):
        (root / label).mkdir(parents=True)
    image = np.full((32, 40), 90, np.uint8)
    mask = np.zeros((32, 40), np.uint8)
    mask[5:10, 5:12] = 255
    cv2.imwrite(str(root / "benign" / "benign (1).png"), image)
    cv2.imwrite(str(root / "benign" / "benign (1)_mask.png"), mask)
    cv2.imwrite(str(root / "normal" / "normal (1).png"), image)
    cv2.imwrite(str(root / "normal" / "normal (1)_mask.png"), np.zeros_like(mask))
    return image, mask


def test_busi_reader_reads_good_tree(tmp_path):
    _busi_tree(tmp_path)
    records = read_busi(tmp_path, progress=False)
    assert [(r.relpath, r.image_label, r.boxes) for r in records] == [
        (os.path.join("benign", "benign (1).png"), 1, [[5.0, 5.0, 12.0, 10.0]]),
        (os.path.join("normal", "normal (1).png"), 0, []),
    ]


def test_busi_reader_reports_every_bad_file(tmp_path):
    image, mask = _busi_tree(tmp_path)
    benign = tmp_path / "benign"
    cv2.imwrite(str(benign / "benign (2).png"), image)  # no mask
    (benign / "benign (3).png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt image
    cv2.imwrite(str(benign / "benign (3)_mask.png"), mask)
    cv2.imwrite(str(benign / "benign (4).png"), image)
    cv2.imwrite(str(benign / "benign (4)_mask.png"), np.zeros((10, 10), np.uint8))  # mask of another size
    (tmp_path / "cysts").mkdir()  # unknown class folder
    with pytest.raises(DatasetError) as err:
        read_busi(tmp_path, progress=False)
    text = str(err.value)
    assert "4 problem(s)" in text
    assert f"{benign / 'benign (2).png'}: no mask file" in text
    assert f"{benign / 'benign (3).png'}: cannot read image" in text
    assert f"{benign / 'benign (4)_mask.png'}: mask is 10x10" in text
    assert f"{tmp_path / 'cysts'}: unknown class folder" in text


def test_atomic_files_get_usual_permissions(tmp_path):
    from wssdl_d2.utils.atomic import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (os.stat(tmp_path / "x.json").st_mode & 0o777) == 0o666 & ~mask
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]
