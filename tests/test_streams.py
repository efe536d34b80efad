"""Strong / weak streams: exact per-batch composition, alternating batches, seeding, rank shares; the
per-stream mapper (fields kept, weak-only geometric augmentation with correct boxes, additive brightness)."""
import itertools

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from detectron2.data import transforms as T

from wssdl_d2.data.mapper import (
    BrightnessShiftTransform,
    RandomBrightnessShift,
    RandomCropMargin,
    WSSDLDatasetMapper,
    build_stream_augmentations,
)
from wssdl_d2.data.streams import build_stream_loader, split_by_supervision


def _dicts():
    return DatasetCatalog.get("testphantom_train_strong_30") + DatasetCatalog.get("testphantom_train_weak_30")


def _identity(d):
    return dict(d)


def _loader(cfg, dicts=None):
    return build_stream_loader(cfg, _dicts() if dicts is None else dicts, _identity)


@pytest.mark.parametrize("strong, weak", [(1, 2), (2, 2), (3, 1)])
def test_combined_batches_have_exact_composition(tiny_cfg, strong, weak):
    cfg = tiny_cfg(**{"WSSDL.STRONG_PER_BATCH": strong, "WSSDL.WEAK_PER_BATCH": weak})
    for batch in itertools.islice(_loader(cfg), 150):
        assert len(batch) == strong + weak
        assert [d["supervision"] for d in batch] == ["strong"] * strong + ["weak"] * weak


def test_alternating_yields_a_strong_and_a_weak_batch(tiny_cfg):
    cfg = tiny_cfg(**{"WSSDL.BATCH_MODE": "alternating", "WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 3})
    for batch in itertools.islice(_loader(cfg), 100):
        assert set(batch) == {"strong", "weak"}
        assert [d["supervision"] for d in batch["strong"]] == ["strong"]
        assert [d["supervision"] for d in batch["weak"]] == ["weak"] * 3


def test_streams_are_shuffled_seeded_and_cover_their_images(tiny_cfg):
    cfg = tiny_cfg(**{"WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 1, "SEED": 7})
    strong, weak = split_by_supervision(_dicts())
    order = [(b[0]["image_id"], b[1]["image_id"]) for b in itertools.islice(_loader(cfg), 3 * len(weak))]
    again = [(b[0]["image_id"], b[1]["image_id"]) for b in itertools.islice(_loader(cfg), 3 * len(weak))]
    assert order == again
    strong_seq, weak_seq = [s for s, _ in order], [w for _, w in order]
    assert set(strong_seq) == {d["image_id"] for d in strong} and set(weak_seq) == {d["image_id"] for d in weak}
    assert weak_seq[: len(weak)] != sorted(weak_seq[: len(weak)])  # shuffled
    cfg.SEED = 8
    assert [(b[0]["image_id"], b[1]["image_id"]) for b in itertools.islice(_loader(cfg), 30)] != order[:30]


def test_one_empty_stream_is_the_same_code(tiny_cfg):
    strong, weak = split_by_supervision(_dicts())
    cfg = tiny_cfg(**{"WSSDL.STRONG_PER_BATCH": 2, "WSSDL.WEAK_PER_BATCH": 3})
    for batch in itertools.islice(_loader(cfg, strong), 20):
        assert [d["supervision"] for d in batch] == ["strong"] * 2
    for batch in itertools.islice(_loader(cfg, weak), 20):
        assert [d["supervision"] for d in batch] == ["weak"] * 3
    with pytest.raises(ValueError, match="WEAK_PER_BATCH is 0"):
        _loader(tiny_cfg(**{"WSSDL.WEAK_PER_BATCH": 0}))
    with pytest.raises(ValueError, match="BATCH_MODE"):
        _loader(tiny_cfg(**{"WSSDL.BATCH_MODE": "interleaved"}))


def test_every_rank_draws_its_own_share(tiny_cfg, monkeypatch):
    import detectron2.data.build as d2_build
    from detectron2.utils import comm

    cfg = tiny_cfg(**{"WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 2,
                      "DATALOADER.ASPECT_RATIO_GROUPING": False})
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(d2_build, "get_world_size", lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        shares.append([[d["image_id"] for d in b] for b in itertools.islice(_loader(cfg), 12)])
    for batches in shares:
        assert all(len(b) == 3 for b in batches)
    # both ranks read the same seeded permutation of each stream, interleaved: their images differ per step
    assert all(a != b for a, b in zip(shares[0], shares[1]))
    strong, weak = split_by_supervision(_dicts())
    seen = {b[0] for share in shares for b in share[: (len(strong) + 1) // 2]}
    assert seen == {d["image_id"] for d in strong}


def test_mapper_keeps_supervision_and_image_label(tiny_cfg):
    mapper = WSSDLDatasetMapper(tiny_cfg(), is_train=True)
    for d in _dicts()[:3] + _dicts()[-3:]:
        out = mapper(d)
        assert out["supervision"] == d["supervision"] and out["image_label"] == d["image_label"]
        assert out["image"].shape[0] == 3
        assert len(out["instances"]) == (len(d["annotations"]) if d["supervision"] == "strong" else 0)
    weak_only = {k: v for k, v in DatasetCatalog.get("testphantom_train_weak_30")[0].items() if k != "annotations"}
    assert len(mapper(weak_only)["instances"]) == 0


def test_stream_augmentations(tiny_cfg):
    strong = [type(a).__name__ for a in build_stream_augmentations(tiny_cfg(), weak=False)]
    weak = [type(a).__name__ for a in build_stream_augmentations(tiny_cfg(), weak=True)]
    assert strong == ["ResizeShortestEdge", "RandomFlip", "RandomBrightnessShift", "RandomContrast"]
    assert weak == ["RandomCropMargin", "RandomRotation"] + strong
    off = tiny_cfg(**{"WSSDL.AUG.FLIP": False, "WSSDL.AUG.BRIGHTNESS": 0.0, "WSSDL.AUG.CONTRAST": (1.0, 1.0),
                      "WSSDL.AUG.WEAK_ROTATION": 0.0, "WSSDL.AUG.WEAK_CROP_MARGIN": 0.0})
    assert [type(a).__name__ for a in build_stream_augmentations(off, weak=True)] == ["ResizeShortestEdge"]


def test_additive_brightness():
    image = np.array([[0, 100, 250]], dtype=np.uint8)
    assert BrightnessShiftTransform(51.0).apply_image(image).tolist() == [[51, 151, 255]]
    assert BrightnessShiftTransform(-51.0).apply_image(image).tolist() == [[0, 49, 199]]
    np.random.seed(0)
    deltas = [RandomBrightnessShift(0.2).get_transform(image).delta for _ in range(200)]
    assert -51 <= min(deltas) < -40 and 40 < max(deltas) <= 51


def _bright_box(image):
    ys, xs = np.nonzero(image > 128)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def _iou(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_weak_geometric_augmentations_move_boxes_with_the_image():
    np.random.seed(1)
    image = np.zeros((120, 160), dtype=np.uint8)
    image[40:80, 50:110] = 255
    box = np.array([[50.0, 40.0, 110.0, 80.0]])
    for _ in range(20):
        augs = T.AugmentationList([RandomCropMargin(0.05),
                                   T.RandomRotation([-5.0, 5.0], expand=False, sample_style="range")])
        inputs = T.AugInput(image.copy(), boxes=box.copy())
        transforms = augs(inputs)
        assert any(isinstance(t, T.CropTransform) for t in transforms)
        assert inputs.image.shape[0] >= 120 * 0.9 - 1 and inputs.image.shape[1] >= 160 * 0.9 - 1
        # the transformed box is the (axis-aligned) hull of the rotated rectangle: it contains the bright region
        assert _iou(inputs.boxes[0], _bright_box(inputs.image)) > 0.9
