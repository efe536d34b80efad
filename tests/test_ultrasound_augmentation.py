"""Ultrasound augmentations: shapes and dtypes kept, photometric ones leave boxes alone, the depth crop cuts boxes at
the new bottom edge, drawn parameters stay in range, a seed repeats a draw, and the config builds the list."""
import os

import numpy as np
import pytest
from detectron2.data import transforms as T
from detectron2.data.detection_utils import transform_instance_annotations
from detectron2.structures import BoxMode
from fvcore.transforms.transform import NoOpTransform

from wssdl_d2.config import merge_config
from wssdl_d2.data import ultrasound_augmentation as U

PHANTOM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "Phantom", "strong_only.yaml")
PHOTOMETRIC = [
    lambda: U.RandomGain(gain=(0.5, 2.0), prob=1.0),
    lambda: U.RandomDepthGain(gain=(0.5, 2.0), num_points=4, prob=1.0),
    lambda: U.RandomSpeckle(strength=(0.2, 0.4), correlation=(0.5, 1.5), prob=1.0),
    lambda: U.RandomBlur(sigma=(1.0, 2.0), prob=1.0),
    lambda: U.RandomResolution(scale=(0.3, 0.6), prob=1.0),
    lambda: U.RandomGamma(gamma=(0.5, 2.0), prob=1.0),
]
ALL = PHOTOMETRIC + [lambda: U.RandomDepthCrop(keep=(0.5, 0.8), prob=1.0)]


def _image(h=60, w=80, c=3, seed=0):
    rng = np.random.default_rng(seed)
    gray = rng.integers(20, 230, size=(h, w), dtype=np.uint8)
    return np.repeat(gray[:, :, None], c, axis=2) if c else gray


def _apply(aug, image, boxes, seed=0):
    np.random.seed(seed)
    inp = T.AugInput(image.copy(), boxes=boxes.copy())
    tfm = T.AugmentationList([aug])(inp)
    return inp, tfm


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("channels", [3, 1, 0])
def test_shape_and_dtype_kept_and_image_changed(make, channels):
    image = _image(c=channels)
    inp, _ = _apply(make(), image, np.array([[10.0, 10.0, 30.0, 50.0]]))
    out = inp.image
    assert out.dtype == np.uint8
    if isinstance(make(), U.RandomDepthCrop):
        assert out.shape[1:] == image.shape[1:] and 30 <= out.shape[0] < 60
        np.testing.assert_array_equal(out, image[:out.shape[0]])
    else:
        assert out.shape == image.shape
        assert np.abs(out.astype(int) - image.astype(int)).mean() > 1  # it did something
    if out.ndim == 3:  # every channel changed alike (a grey scan stays grey)
        assert all(np.array_equal(out[..., 0], out[..., k]) for k in range(out.shape[2]))


@pytest.mark.parametrize("make", PHOTOMETRIC)
def test_photometric_keep_boxes_and_segmentation(make):
    boxes = np.array([[10.0, 5.0, 30.0, 50.0], [0.0, 0.0, 80.0, 60.0]])
    seg = np.arange(60 * 80, dtype=np.uint8).reshape(60, 80)
    np.random.seed(1)
    tfm = make().get_transform(_image())
    np.testing.assert_array_equal(tfm.apply_box(boxes), boxes)
    np.testing.assert_array_equal(tfm.apply_segmentation(seg), seg)


def test_depth_crop_clips_and_drops_boxes_like_detectron2():
    image = _image(h=100, w=80)
    np.random.seed(0)
    tfm = U.RandomDepthCrop(keep=(0.6, 0.6), prob=1.0).get_transform(image)
    assert isinstance(tfm, T.CropTransform) and (tfm.x0, tfm.y0, tfm.h, tfm.w) == (0, 0, 60, 80)
    shallow = {"bbox": [10, 5, 30, 40], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    straddling = {"bbox": [10, 50, 30, 90], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    deep = {"bbox": [10, 70, 30, 90], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    size = (60, 80)
    assert list(transform_instance_annotations(shallow, T.TransformList([tfm]), size)["bbox"]) == [10, 5, 30, 40]
    assert list(transform_instance_annotations(straddling, T.TransformList([tfm]), size)["bbox"]) == [10, 50, 30, 60]
    dropped = transform_instance_annotations(deep, T.TransformList([tfm]), size)["bbox"]
    assert dropped[3] - dropped[1] == 0  # empty: filter_empty_instances removes it


def test_parameters_in_range():
    image = _image()
    np.random.seed(0)
    for _ in range(50):
        assert 0.5 <= U.RandomGain(gain=(0.5, 0.9), prob=1.0).get_transform(image).gain <= 0.9
        assert all(0.6 <= g <= 1.3 for g in U.RandomDepthGain(gain=(0.6, 1.3), prob=1.0).get_transform(image).gains)
        sp = U.RandomSpeckle(strength=(0.1, 0.2), correlation=(1.0, 2.0), prob=1.0).get_transform(image)
        assert 0.1 <= sp.strength <= 0.2 and 1.0 <= sp.correlation <= 2.0
        assert 0.3 <= U.RandomBlur(sigma=(0.3, 0.4), prob=1.0).get_transform(image).sigma <= 0.4
        assert 0.5 <= U.RandomResolution(scale=(0.5, 0.7), prob=1.0).get_transform(image).scale <= 0.7
        assert 0.8 <= U.RandomGamma(gamma=(0.8, 1.2), prob=1.0).get_transform(image).gamma <= 1.2
        assert 42 <= U.RandomDepthCrop(keep=(0.7, 0.9), prob=1.0).get_transform(image).h <= 54
    profile = U.DepthGainTransform([0.5, 2.0]).profile(100)
    assert profile[0] == pytest.approx(0.5) and profile[-1] == pytest.approx(2.0) and np.all(np.diff(profile) > 0)
    field = U.SpeckleTransform(0.25, 1.0, seed=3).field(200, 200)
    assert field.mean() == pytest.approx(1.0, abs=0.02) and field.std() == pytest.approx(0.25, abs=0.01)


def test_probability_and_seed():
    image = _image()
    for make in ALL:
        never = make()
        never.prob = 0.0
        assert isinstance(never.get_transform(image), NoOpTransform)
    aug = U.RandomSpeckle(prob=0.5)
    np.random.seed(0)
    applied = sum(not isinstance(aug.get_transform(image), NoOpTransform) for _ in range(400))
    assert 150 < applied < 250
    for make in ALL:
        first, _ = _apply(make(), image, np.zeros((0, 4)), seed=7)
        again, _ = _apply(make(), image, np.zeros((0, 4)), seed=7)
        other, _ = _apply(make(), image, np.zeros((0, 4)), seed=8)
        np.testing.assert_array_equal(first.image, again.image)
        assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)


def test_bad_ranges_are_named():
    with pytest.raises(ValueError, match="gain"):
        U.RandomGain(gain=(2.0, 1.0))
    with pytest.raises(ValueError, match="prob"):
        U.RandomBlur(prob=1.5)
    cfg = merge_config(PHANTOM, ["WSSDL.AUG.ULTRASOUND.ENABLED", "True", "WSSDL.AUG.ULTRASOUND.GAMMA.RANGE",
                                 "(0.0, 1.0)"])
    with pytest.raises(ValueError, match="WSSDL.AUG.ULTRASOUND.GAMMA"):
        U.build_ultrasound_augmentations(cfg)


def test_built_from_config():
    cfg = merge_config(PHANTOM)
    assert U.build_ultrasound_augmentations(cfg) == []  # off by default
    cfg = merge_config(PHANTOM, ["WSSDL.AUG.ULTRASOUND.ENABLED", "True", "WSSDL.AUG.ULTRASOUND.BLUR.PROB", "0.0"])
    augs = U.build_ultrasound_augmentations(cfg)
    assert [type(a).__name__ for a in augs] == ["RandomDepthCrop", "RandomResolution", "RandomSpeckle",
                                                "RandomDepthGain", "RandomGain", "RandomGamma"]
    assert augs[0].keep == tuple(cfg.WSSDL.AUG.ULTRASOUND.DEPTH_CROP.RANGE)


def test_mapper_applies_them_to_both_streams(tiny_cfg):
    from detectron2.data import DatasetCatalog

    from wssdl_d2.data.mapper import WSSDLDatasetMapper, build_stream_augmentations

    off = tiny_cfg()
    for weak in (False, True):
        assert not any(isinstance(a, U._RandomUltrasound) for a in build_stream_augmentations(off, weak))
    on = {"WSSDL.AUG.ULTRASOUND.ENABLED": True, "WSSDL.AUG.ULTRASOUND.DEPTH_CROP.PROB": 1.0,
          "WSSDL.AUG.ULTRASOUND.DEPTH_CROP.RANGE": (0.5, 0.5), "WSSDL.AUG.ULTRASOUND.SPECKLE.PROB": 1.0,
          "WSSDL.AUG.FLIP": False}
    cfg = tiny_cfg(**on)
    for weak in (False, True):
        names = [type(a).__name__ for a in build_stream_augmentations(cfg, weak)]
        assert names[:7] == ["RandomDepthCrop", "RandomResolution", "RandomBlur", "RandomSpeckle", "RandomDepthGain",
                             "RandomGain", "RandomGamma"]
    mapper = WSSDLDatasetMapper(cfg, is_train=True)
    strong = [d for d in DatasetCatalog.get("testphantom_train_strong_30") if d.get("supervision") == "strong"]
    np.random.seed(0)
    kept = 0
    for d in strong[:6]:
        out = mapper(d)
        h, w = out["image"].shape[1:]
        boxes = out["instances"].gt_boxes.tensor
        # the top half, resized back up: every kept box is inside the image, none deeper than the cut
        assert len(boxes) <= len(d["annotations"])
        assert bool((boxes[:, 3] <= h + 1e-3).all()) and bool((boxes[:, 2] <= w + 1e-3).all())
        scale = h / (d["height"] * 0.5)
        for box in boxes:
            assert any(abs(float(box[1]) - a["bbox"][1] * scale) < 2 for a in d["annotations"])
        kept += len(boxes)
    assert kept > 0
