"""Ultrasound-specific augmentations: what changes between scanners, settings and hospitals.

Each effect is an fvcore :class:`~fvcore.transforms.transform.Transform` (applied to a ``uint8`` image of shape
``(H, W)`` or ``(H, W, C)``, returning the same shape and dtype) plus a Detectron2
:class:`~detectron2.data.transforms.Augmentation` that draws its parameters from numpy's global RNG (so
``np.random.seed`` makes a run repeatable, as for Detectron2's own augmentations):

============================  ==============================================================================
``RandomGain``                overall gain: every pixel times ``g`` (log-uniform in ``gain``)
``RandomDepthGain``           TGC-like gain: a factor that varies smoothly with depth (image row), through
                              ``num_points`` control gains (log-uniform in ``gain``) spaced from top to bottom
``RandomSpeckle``             multiplicative speckle-like noise: gamma-distributed (mean 1, standard deviation
                              ``strength``), spatially correlated by a Gaussian blur of ``correlation`` pixels
``RandomBlur``                Gaussian blur of ``sigma`` pixels (the scanner's point-spread function)
``RandomResolution``          downsample by ``scale`` (area average) and upsample back (bilinear)
``RandomGamma``               dynamic range / gamma: ``255 * (x / 255) ** gamma`` (log-uniform in ``gamma``)
``RandomDepthCrop``           keep the top ``keep`` fraction of the rows (a shallower depth setting); boxes are
                              cut at the new bottom edge by Detectron2's annotation code (and dropped when
                              nothing is left of them); the mapper's resize then rescales the image
============================  ==============================================================================

The photometric transforms leave coordinates, boxes and segmentation maps unchanged; the depth crop is Detectron2's
:class:`~detectron2.data.transforms.CropTransform` anchored at the top-left corner, so coordinates keep their
values and only the clip at the new height changes boxes. Every augmentation applies with probability ``prob``
(else a :class:`NoOpTransform`).

:func:`build_ultrasound_augmentations` builds the enabled list from ``cfg.WSSDL.AUG.ULTRASOUND``; it is empty when
``ENABLED`` is False (the default). The list is meant for the image as read, before the resize to the training
size: depth crop first, then resolution, blur, speckle (the image formation), depth gain, gain and gamma (the
scanner's display settings).
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform, Transform

__all__ = [
    "GainTransform", "DepthGainTransform", "SpeckleTransform", "GaussianBlurTransform", "ResolutionTransform",
    "GammaTransform", "RandomGain", "RandomDepthGain", "RandomSpeckle", "RandomBlur", "RandomResolution",
    "RandomGamma", "RandomDepthCrop", "build_ultrasound_augmentations",
]


# ---- transforms ---------------------------------------------------------------------------------------------------
def _as_float(img: np.ndarray) -> np.ndarray:
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got shape {img.shape}")
    return img.astype(np.float32)


def _back(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``out`` (float32) in the dtype of ``like``: rounded and clipped to [0, 255] for uint8 images."""
    if like.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(like.dtype)


def _per_pixel(field: np.ndarray, img: np.ndarray) -> np.ndarray:
    """A (H, W) field broadcastable against ``img`` (the same factor on every channel)."""
    return field if img.ndim == 2 else field[:, :, None]


class _PhotometricTransform(Transform):
    """Changes pixel values only: coordinates, boxes, polygons and segmentation maps are returned unchanged."""

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation


class GainTransform(_PhotometricTransform):
    """Every pixel times ``gain`` (> 0), clipped to [0, 255] for uint8 images."""

    def __init__(self, gain: float):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return _back(_as_float(img) * self.gain, img)


class DepthGainTransform(_PhotometricTransform):
    """Time-gain-compensation-like gain: row ``y`` of an ``H``-row image is multiplied by a factor interpolated
    (monotone cubic, in log-gain) through ``gains``, control values placed evenly from the top row (depth 0) to the
    bottom row (full depth). One control value gives a constant gain."""

    def __init__(self, gains: Sequence[float]):
        super().__init__()
        gains = tuple(float(g) for g in gains)
        if not gains or min(gains) <= 0:
            raise ValueError(f"depth gains must be a non-empty list of positive factors, not {gains}")
        self._set_attributes(locals())

    def profile(self, height: int) -> np.ndarray:
        """The gain of each row, shape ``(height,)``."""
        if len(self.gains) == 1:
            return np.full(height, self.gains[0], dtype=np.float32)
        from scipy.interpolate import PchipInterpolator

        knots = np.linspace(0.0, 1.0, len(self.gains))
        depth = np.linspace(0.0, 1.0, height)
        return np.exp(PchipInterpolator(knots, np.log(self.gains))(depth)).astype(np.float32)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        rows = self.profile(img.shape[0])[:, None]
        return _back(_as_float(img) * _per_pixel(rows, img), img)


class SpeckleTransform(_PhotometricTransform):
    """Multiplicative speckle-like noise: a field of gamma-distributed factors (mean 1, standard deviation
    ``strength``) blurred by a Gaussian of ``correlation`` pixels (0: independent pixels) and rescaled to standard
    deviation ``strength`` again, drawn from ``np.random.default_rng(seed)`` (the same field for the same seed and
    image size); the same field multiplies every channel."""

    def __init__(self, strength: float, correlation: float, seed: int):
        super().__init__()
        if strength < 0 or correlation < 0:
            raise ValueError(f"speckle strength and correlation must be >= 0, not {strength}, {correlation}")
        self._set_attributes(locals())

    def field(self, height: int, width: int) -> np.ndarray:
        """The multiplicative noise, shape ``(height, width)``, float32, >= 0."""
        if self.strength == 0:
            return np.ones((height, width), np.float32)
        shape = 1.0 / self.strength ** 2  # gamma(k, 1/k): mean 1, variance 1/k
        noise = np.random.default_rng(self.seed).gamma(shape, 1.0 / shape, size=(height, width)).astype(np.float32)
        if self.correlation > 0:
            noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=self.correlation, borderType=cv2.BORDER_REFLECT)
            deviation = noise - noise.mean()
            std = float(deviation.std())
            if std > 0:
                noise = 1.0 + deviation * (self.strength / std)
        return np.maximum(noise, 0.0)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return _back(_as_float(img) * _per_pixel(self.field(*img.shape[:2]), img), img)


class GaussianBlurTransform(_PhotometricTransform):
    """Gaussian blur with standard deviation ``sigma`` pixels (0: unchanged)."""

    def __init__(self, sigma: float):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if self.sigma <= 0:
            return img
        out = cv2.GaussianBlur(_as_float(img), (0, 0), sigmaX=self.sigma, borderType=cv2.BORDER_REFLECT)
        return _back(out.reshape(img.shape), img)


class ResolutionTransform(_PhotometricTransform):
    """Lower resolution at the same size: downsample to ``scale`` (0 < scale <= 1) of the height and width by area
    averaging, then upsample back bilinearly."""

    def __init__(self, scale: float):
        super().__init__()
        if not 0 < scale <= 1:
            raise ValueError(f"resolution scale must be in (0, 1], not {scale}")
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        small = (max(1, int(round(w * self.scale))), max(1, int(round(h * self.scale))))
        if small == (w, h):
            return img
        low = cv2.resize(_as_float(img), small, interpolation=cv2.INTER_AREA)
        return _back(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR).reshape(img.shape), img)


class GammaTransform(_PhotometricTransform):
    """Dynamic range: ``255 * (x / 255) ** gamma`` (gamma < 1 brightens the dark range, > 1 darkens it)."""

    def __init__(self, gamma: float):
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, not {gamma}")
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        x = np.clip(_as_float(img) / 255.0, 0.0, None)
        return _back(255.0 * np.power(x, self.gamma), img)


# ---- augmentations ------------------------------------------------------------------------------------------------
def _check_range(name: str, value: Sequence[float], low: float, high: float) -> Tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must be (low, high) with {low} <= low <= high <= {high}, not {tuple(value)}")
    return lo, hi


def _check_prob(prob: float) -> float:
    if not 0 <= prob <= 1:
        raise ValueError(f"prob must be in [0, 1], not {prob}")
    return float(prob)


def _log_uniform(lo: float, hi: float, size=None):
    return np.exp(np.random.uniform(np.log(lo), np.log(hi), size=size))


class _RandomUltrasound(T.Augmentation):
    """Applies with probability ``prob``: ``_draw(image)`` gives the transform, else a NoOpTransform."""

    def get_transform(self, image: np.ndarray) -> Transform:
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        return self._draw(image)


class RandomGain(_RandomUltrasound):
    """Overall gain ``g ~ log-uniform(gain)`` (:class:`GainTransform`) with probability ``prob``."""

    def __init__(self, gain: Sequence[float] = (0.7, 1.4), prob: float = 0.5):
        super().__init__()
        gain = _check_range("gain", gain, 1e-3, 1e3)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return GainTransform(float(_log_uniform(*self.gain)))


class RandomDepthGain(_RandomUltrasound):
    """TGC-like depth gain (:class:`DepthGainTransform`): ``num_points`` control gains, each log-uniform in
    ``gain``, from the top to the bottom row; with probability ``prob``."""

    def __init__(self, gain: Sequence[float] = (0.6, 1.5), num_points: int = 4, prob: float = 0.5):
        super().__init__()
        gain = _check_range("depth gain", gain, 1e-3, 1e3)
        if int(num_points) < 1:
            raise ValueError(f"num_points must be >= 1, not {num_points}")
        num_points = int(num_points)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return DepthGainTransform([float(g) for g in _log_uniform(*self.gain, size=self.num_points)])


class RandomSpeckle(_RandomUltrasound):
    """Speckle-like multiplicative noise (:class:`SpeckleTransform`): ``strength ~ U(strength)`` (standard
    deviation of the factor), ``correlation ~ U(correlation)`` pixels, a fresh noise seed; probability ``prob``."""

    def __init__(self, strength: Sequence[float] = (0.05, 0.3), correlation: Sequence[float] = (0.5, 1.5),
                 prob: float = 0.5):
        super().__init__()
        strength = _check_range("speckle strength", strength, 0.0, 2.0)
        correlation = _check_range("speckle correlation", correlation, 0.0, 100.0)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return SpeckleTransform(float(np.random.uniform(*self.strength)), float(np.random.uniform(*self.correlation)),
                                int(np.random.randint(0, 2 ** 31 - 1)))


class RandomBlur(_RandomUltrasound):
    """Gaussian blur (:class:`GaussianBlurTransform`), ``sigma ~ U(sigma)`` pixels, with probability ``prob``."""

    def __init__(self, sigma: Sequence[float] = (0.3, 1.5), prob: float = 0.3):
        super().__init__()
        sigma = _check_range("blur sigma", sigma, 0.0, 100.0)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return GaussianBlurTransform(float(np.random.uniform(*self.sigma)))


class RandomResolution(_RandomUltrasound):
    """Resolution change (:class:`ResolutionTransform`), ``scale ~ U(scale)``, with probability ``prob``."""

    def __init__(self, scale: Sequence[float] = (0.4, 1.0), prob: float = 0.3):
        super().__init__()
        scale = _check_range("resolution scale", scale, 1e-3, 1.0)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return ResolutionTransform(float(np.random.uniform(*self.scale)))


class RandomGamma(_RandomUltrasound):
    """Dynamic range / gamma (:class:`GammaTransform`), ``gamma ~ log-uniform(gamma)``, with probability
    ``prob``."""

    def __init__(self, gamma: Sequence[float] = (0.7, 1.5), prob: float = 0.5):
        super().__init__()
        gamma = _check_range("gamma", gamma, 1e-2, 1e2)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        return GammaTransform(float(_log_uniform(*self.gamma)))


class RandomDepthCrop(_RandomUltrasound):
    """A shallower depth: keep the top ``round(f * H)`` rows, ``f ~ U(keep)``, with probability ``prob``
    (Detectron2's :class:`CropTransform` at the top-left corner; boxes keep their coordinates and are clipped at
    the new bottom edge, or dropped when empty, by the mapper's annotation code)."""

    def __init__(self, keep: Sequence[float] = (0.7, 1.0), prob: float = 0.3):
        super().__init__()
        keep = _check_range("depth crop keep fraction", keep, 1e-3, 1.0)
        prob = _check_prob(prob)
        self._init(locals())

    def _draw(self, image):
        h, w = image.shape[:2]
        rows = min(h, max(1, int(round(float(np.random.uniform(*self.keep)) * h))))
        if rows == h:
            return NoOpTransform()
        return T.CropTransform(0, 0, w, rows, orig_w=w, orig_h=h)


def build_ultrasound_augmentations(cfg: CfgNode) -> List[T.Augmentation]:
    """The ultrasound augmentations of ``cfg.WSSDL.AUG.ULTRASOUND``, in application order (see the module
    docstring); empty when ``ENABLED`` is False. A transform whose ``PROB`` is 0 is left out."""
    us = cfg.WSSDL.AUG.ULTRASOUND
    if not us.ENABLED:
        return []
    builders = {
        "DEPTH_CROP": lambda n: RandomDepthCrop(keep=n.RANGE, prob=n.PROB),
        "RESOLUTION": lambda n: RandomResolution(scale=n.RANGE, prob=n.PROB),
        "BLUR": lambda n: RandomBlur(sigma=n.RANGE, prob=n.PROB),
        "SPECKLE": lambda n: RandomSpeckle(strength=n.RANGE, correlation=n.CORRELATION, prob=n.PROB),
        "DEPTH_GAIN": lambda n: RandomDepthGain(gain=n.RANGE, num_points=n.POINTS, prob=n.PROB),
        "GAIN": lambda n: RandomGain(gain=n.RANGE, prob=n.PROB),
        "GAMMA": lambda n: RandomGamma(gamma=n.RANGE, prob=n.PROB),
    }
    augs = []
    for key, build in builders.items():
        try:
            aug = build(us[key])
        except (ValueError, TypeError) as err:
            raise ValueError(f"WSSDL.AUG.ULTRASOUND.{key}: {err}") from None
        if aug.prob > 0:
            augs.append(aug)
    return augs
