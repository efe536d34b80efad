"""The training mapper: Detectron2's DatasetMapper with one augmentation list per stream.

All training images (``cfg.WSSDL.AUG``): resize (INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN), horizontal flip,
additive brightness ``+-BRIGHTNESS * 255`` and contrast ``x[CONTRAST]`` around the image mean (the authors'
``random_brightness(0.2)`` / ``random_contrast(0.2, 1.8)`` on [0, 1] images). Weak images first get a rotation
of at most ``+-WEAK_ROTATION`` degrees (same canvas) and a crop of at most ``WEAK_CROP_MARGIN`` of the width /
height from each side. With ``WSSDL.AUG.ULTRASOUND.ENABLED``, the images of both streams (strong, pseudo and weak)
first get the ultrasound augmentations (:func:`wssdl_d2.data.ultrasound_augmentation.build_ultrasound_augmentations`:
depth crop, resolution, blur, speckle, depth gain, gain, gamma) on the image as read. Boxes follow every geometric
transform (Detectron2's transforms), so the weak-only augmentations are also correct on images that have boxes.

Mapped dicts keep ``supervision`` and ``image_label``; weak images get an empty ``instances``.
"""
from typing import List

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform

from .ultrasound_augmentation import build_ultrasound_augmentations


class BrightnessShiftTransform(Transform):
    """Add ``delta`` (in pixel units) to every pixel, clipped to [0, 255] for uint8 images. Coordinates are
    unchanged."""

    def __init__(self, delta):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img):
        if img.dtype == np.uint8:
            return np.clip(img.astype(np.float32) + self.delta, 0, 255).astype(np.uint8)
        return img + self.delta

    def apply_coords(self, coords):
        return coords

    def inverse(self):
        return BrightnessShiftTransform(-self.delta)


class RandomBrightnessShift(T.Augmentation):
    """Additive brightness: ``delta ~ U(-max_delta, max_delta) * 255``; ``max_delta`` is a fraction of the
    8-bit range (Detectron2's RandomBrightness is multiplicative)."""

    def __init__(self, max_delta):
        super().__init__()
        if not 0 <= max_delta <= 1:
            raise ValueError(f"WSSDL.AUG.BRIGHTNESS must be in [0, 1] (fraction of 255), not {max_delta}")
        self._init(locals())

    def get_transform(self, image):
        return BrightnessShiftTransform(float(np.random.uniform(-self.max_delta, self.max_delta)) * 255.0)


class RandomCropMargin(T.Augmentation):
    """Crop ``U(0, max_fraction)`` of the width from the left and, independently, from the right, and likewise
    of the height from the top and the bottom."""

    def __init__(self, max_fraction):
        super().__init__()
        if not 0 <= max_fraction < 0.5:
            raise ValueError(f"WSSDL.AUG.WEAK_CROP_MARGIN must be in [0, 0.5), not {max_fraction}")
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        left, right = (int(f * w) for f in np.random.uniform(0, self.max_fraction, size=2))
        top, bottom = (int(f * h) for f in np.random.uniform(0, self.max_fraction, size=2))
        return T.CropTransform(left, top, w - left - right, h - top - bottom, orig_w=w, orig_h=h)


def build_stream_augmentations(cfg: CfgNode, weak: bool) -> List[T.Augmentation]:
    """The list of Augmentations for training images of one stream (``weak`` True: the weak stream)."""
    aug = cfg.WSSDL.AUG
    augs = build_ultrasound_augmentations(cfg)  # both streams; empty unless WSSDL.AUG.ULTRASOUND.ENABLED
    if weak and aug.WEAK_CROP_MARGIN > 0:
        augs.append(RandomCropMargin(float(aug.WEAK_CROP_MARGIN)))
    if weak and aug.WEAK_ROTATION > 0:
        augs.append(T.RandomRotation([-float(aug.WEAK_ROTATION), float(aug.WEAK_ROTATION)], expand=False,
                                     sample_style="range"))
    augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                     cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING))
    if aug.FLIP:
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    if aug.BRIGHTNESS > 0:
        augs.append(RandomBrightnessShift(float(aug.BRIGHTNESS)))
    low, high = (float(v) for v in aug.CONTRAST)
    if not 0 <= low <= high:
        raise ValueError(f"WSSDL.AUG.CONTRAST must be (low, high) with 0 <= low <= high, not {tuple(aug.CONTRAST)}")
    if (low, high) != (1.0, 1.0):
        augs.append(T.RandomContrast(low, high))
    return augs


class WSSDLDatasetMapper:
    """Maps a training dict with the augmentations of its stream ("weak" for ``supervision: weak``, "strong"
    otherwise), using Detectron2's DatasetMapper for everything else (image reading, format, annotations to
    ``instances``). Output: DatasetMapper's dict plus ``supervision`` and ``image_label``."""

    def __init__(self, cfg, is_train=True):
        if not is_train:
            raise ValueError("WSSDLDatasetMapper is for training; test loaders use DatasetMapper(cfg, False)")
        if cfg.INPUT.CROP.ENABLED:
            raise ValueError("INPUT.CROP is not used by WSSDLDatasetMapper: weak images are cropped by "
                             "WSSDL.AUG.WEAK_CROP_MARGIN; set INPUT.CROP.ENABLED False")
        base = DatasetMapper.from_config(cfg, True)
        self.mappers = {stream: DatasetMapper(**{**base, "augmentations": build_stream_augmentations(cfg, weak)})
                        for stream, weak in (("strong", False), ("weak", True))}

    def __call__(self, dataset_dict):
        stream = "weak" if dataset_dict.get("supervision") == "weak" else "strong"
        if "annotations" not in dataset_dict:
            dataset_dict = {**dataset_dict, "annotations": []}
        out = self.mappers[stream](dataset_dict)
        out["supervision"] = dataset_dict.get("supervision", "strong")
        out["image_label"] = dataset_dict.get("image_label")
        return out
