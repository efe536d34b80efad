"""Property-based robustness of every reader: random and truncated image bytes, malformed JSON / XML, absurd boxes
and sizes give a DatasetError naming the file (or a valid result), never another exception or a hang.

Deterministic by default (CI); ``WSSDL_FUZZ=1`` explores new random examples, many more of them.

Found and fixed when these were written: in ``load_wssdl_json``, unhashable ids (lists) and non-list / non-dict
``annotations`` / ``categories`` / ``info`` raised TypeError / AttributeError, a non-string ``file_name`` or
``image_root`` TypeError, ``iscrowd: "x"`` ValueError, a NaN coordinate and a height lost in float rounding
(``y + 1e-300 == y``) loaded as a box; in the VOC reader, ``nan`` / ``inf`` / ``1e400`` sizes raised
ValueError / OverflowError, an unknown XML encoding LookupError, a binary split list UnicodeDecodeError and an
id with a NUL byte ValueError. The image reader (``image_io``) and the BUSI / mask readers held.
"""
import contextlib
import io
import json
import math
import os
import tempfile

import cv2
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_demo_image_io import write_dicom

from wssdl_d2.data.busi import read_busi
from wssdl_d2.data.dataset_check import check_dataset
from wssdl_d2.data.errors import DatasetError
from wssdl_d2.data.image_io import load_image
from wssdl_d2.data.masks import boxes_from_mask, read_mask
from wssdl_d2.data.voc import load_voc_wssdl, read_voc_annotation
from wssdl_d2.data.wssdl_json import load_wssdl_json

EXPLORE = bool(os.environ.get("WSSDL_FUZZ"))
pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of the CI job
FUZZ = settings(max_examples=500 if EXPLORE else 40, deadline=5000, derandomize=not EXPLORE, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def _file(name, content):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        yield path


def _valid_images():
    """Bytes of small valid images in every format the readers take."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    out = {}
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".tif", "TIFF"), (".bmp", "BMP")):
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, format=fmt)
        out[ext] = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        path = write_dicom(os.path.join(folder, "x.dcm"), np.stack([gray, gray]))
        out[".dcm"] = open(path, "rb").read()
    return out


VALID = _valid_images()
EXTENSIONS = sorted(VALID) + [""]


def _damaged(data, draw):
    """A truncated or bit-flipped copy of ``data``."""
    data = bytearray(data)
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


def _read_image_is_clean(path):
    try:
        loaded = load_image(path)
    except DatasetError as err:
        assert err.path == path and err.problem
        return
    pixels = loaded.pixels
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8 and pixels.size > 0


@FUZZ
@given(content=st.binary(max_size=2048), ext=st.sampled_from(EXTENSIONS))
def test_random_bytes_as_image(content, ext):
    with _file("image" + ext, content) as path:
        _read_image_is_clean(path)


@FUZZ
@given(data=st.data(), ext=st.sampled_from(sorted(VALID)), as_ext=st.sampled_from(EXTENSIONS))
def test_truncated_or_corrupted_image(data, ext, as_ext):
    content = _damaged(VALID[ext], data.draw)
    with _file("image" + as_ext, content) as path:
        _read_image_is_clean(path)


@FUZZ
@given(rows=st.integers(0, 65535), columns=st.integers(0, 65535), frames=st.integers(-3, 5),
       photometric=st.sampled_from(["MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR", "XYZ", ""]),
       bits=st.sampled_from([1, 8, 12, 16, 32]), frame=st.integers(-4, 4))
def test_dicom_with_absurd_header(rows, columns, frames, photometric, bits, frame):
    """A valid small DICOM whose header lies about its size, frames, photometric interpretation or depth."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.dcm")
        with open(path, "wb") as f:
            f.write(VALID[".dcm"])
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns, ds.PhotometricInterpretation = rows, columns, photometric
        ds.BitsAllocated = ds.BitsStored = bits
        ds.NumberOfFrames = frames
        ds.save_as(path)
        try:
            loaded = load_image(path, frame=frame)
        except DatasetError as err:
            assert err.path == path
            return
        assert loaded.pixels.shape == (rows, columns, 3)


@FUZZ
@given(data=st.data(), ext=st.sampled_from([".png", ".bmp", ".tif"]),
       shape=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_masks(data, ext, shape):
    mask = data.draw(st.lists(st.integers(0, 255), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    mask = np.array(mask, dtype=np.uint8).reshape(shape)
    ok, encoded = cv2.imencode(ext, mask)
    content = encoded.tobytes() if data.draw(st.booleans()) else _damaged(encoded.tobytes(), data.draw)
    with _file("m_mask" + ext, content) as path:
        try:
            read = read_mask(path, expected_hw=shape)
        except DatasetError as err:
            assert err.path == path
            return
        assert read.shape == shape and read.dtype == bool
        for mode in ("union", "separate"):
            boxes = boxes_from_mask(read, mode, data.draw(st.floats(0, 1)))
            assert boxes.shape[1] == 4 and (boxes[:, :2] >= 0).all()
            assert (boxes[:, 2] <= shape[1]).all() and (boxes[:, 3] <= shape[0]).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

GOOD_JSON = {
    "info": {"image_root": "."},
    "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}],
    "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30, "supervision": "strong",
                "image_label": 1},
               {"id": 2, "file_name": "b.png", "width": 40, "height": 30, "supervision": "weak", "image_label": 2}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0}],
}
# every place of the file a value can be replaced at: (key path)
JSON_PLACES = [(k,) for k in GOOD_JSON] + [("images", 0, k) for k in GOOD_JSON["images"][0]] + [
    ("annotations", 0, k) for k in GOOD_JSON["annotations"][0]] + [("categories", 0, k) for k in ("id", "name")] + [
    ("annotations", 0, "bbox", i) for i in range(4)] + [("info", "image_root"), ("images", 0), ("annotations", 0)]


def _mutated(places_values):
    data = json.loads(json.dumps(GOOD_JSON))
    for place, value in places_values:
        node = data
        try:
            for key in place[:-1]:
                node = node[key]
            node[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change replaced a parent of this place
    return data


def _load_json_is_clean(path):
    try:
        records = load_wssdl_json(path)
    except DatasetError as err:
        assert err.path == path and err.problem
        return
    for record in records:
        assert record["image_label"] in (0, 1, 2) and record["supervision"] in ("strong", "weak", "pseudo")
        for ann in record["annotations"]:
            x0, y0, x1, y1 = ann["bbox"]
            assert all(math.isfinite(v) for v in ann["bbox"]) and x1 > x0 and y1 > y0
            assert -1 <= x0 and -1 <= y0 and x1 <= record["width"] + 1 and y1 <= record["height"] + 1


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(JSON_PLACES), JSON_VALUES), min_size=1, max_size=3))
def test_malformed_dataset_json(changes):
    with _file("data.json", json.dumps(_mutated(changes))) as path:
        _load_json_is_clean(path)
        report = check_dataset(path, max_hash_distance=None, progress=False)  # the checker never raises either
        assert all(p.kind and p.message for p in report.problems)


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300), cut=st.integers(0, 400))
def test_random_or_truncated_json_text(text, cut):
    content = text if text else json.dumps(GOOD_JSON)[:cut]
    with _file("data.json", content) as path:
        _load_json_is_clean(path)


@FUZZ
@given(box=st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**12, 10**12), min_size=4,
                    max_size=4),
       width=st.integers(1, 10**9) | st.sampled_from([-5, 0, True, 2.5, float("nan"), "40"]),
       height=st.integers(1, 10**9) | st.sampled_from([-1, 0, False, float("inf")]))
def test_absurd_boxes_and_sizes(box, width, height):
    data = _mutated([(("annotations", 0, "bbox"), box), (("images", 0, "width"), width),
                     (("images", 0, "height"), height)])
    with _file("data.json", json.dumps(data)) as path:
        _load_json_is_clean(path)


XML_NUMBER = st.sampled_from(["10", "-3", "0", "nan", "inf", "-inf", "1e400", "1e9", "", "x", " 7 ", "2.5"])


@FUZZ
@given(width=XML_NUMBER, height=XML_NUMBER, box=st.lists(XML_NUMBER, min_size=4, max_size=4),
       name=st.sampled_from(["benign", "malignant", "__background__", "", "cat"]),
       diag=st.sampled_from(["0", "1", "2", "", None]),
       encoding=st.sampled_from([None, "utf-8", "utf-16", "latin-1", "bogus", "ascii"]),
       cut=st.none() | st.integers(0, 200))
def test_malformed_voc_xml(width, height, box, name, diag, encoding, cut):
    head = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    tags = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    diag_xml = f"<BIRADS><diag>{diag}</diag></BIRADS>" if diag is not None else ""
    text = (f"{head}<annotation><size><width>{width}</width><height>{height}</height></size>{diag_xml}"
            f"<object><name>{name}</name><bndbox>{tags}</bndbox></object></annotation>")
    with _file("x.xml", text[:cut] if cut is not None else text) as path:
        try:
            ann = read_voc_annotation(path)
        except DatasetError as err:
            assert err.path == path and err.problem
            return
        assert ann["width"] > 0 and ann["height"] > 0 and ann["image_label"] in (0, 1, 2)


@FUZZ
@given(lines=st.binary(max_size=200))
def test_voc_split_list_with_random_bytes(lines):
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "ImageSets", "Main"))
        with open(os.path.join(root, "ImageSets", "Main", "s_train.txt"), "wb") as f:
            f.write(lines)
        try:
            records = load_voc_wssdl(root, "s_train")
        except DatasetError as err:
            assert err.problem
            return
        assert records == []  # no annotation file exists: only an empty list can load


@settings(FUZZ, max_examples=15 if not EXPLORE else 100)
@given(image=st.binary(max_size=600), mask=st.binary(max_size=600), damage=st.booleans(), data=st.data())
def test_busi_layout_with_bad_files(image, mask, damage, data):
    if damage:
        image, mask = _damaged(VALID[".png"], data.draw), _damaged(VALID[".png"], data.draw)
    assume(image or mask)
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "benign"))
        for name, content in (("b (1).png", image), ("b (1)_mask.png", mask)):
            with open(os.path.join(root, "benign", name), "wb") as f:
                f.write(content)
        try:
            records = read_busi(root, progress=False)
        except DatasetError as err:
            assert err.problem
            return
        assert all(r.boxes for r in records)
