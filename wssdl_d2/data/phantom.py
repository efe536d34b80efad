"""A synthetic breast-ultrasound phantom: B-mode-like images with exact lesion masks, deterministic from a seed.

Each image is built as echogenicity x speckle x depth attenuation, then log-compressed to 8 bits:

- tissue layers along depth with wavy boundaries: bright skin line, dark subcutaneous fat, brighter mottled
  glandular tissue, striated pectoral muscle; a few hypoechoic fat lobules (no posterior effect) as distractors;
- a benign mass: oval, smooth, wider than tall, homogeneous and hypoechoic, with posterior acoustic enhancement;
- a malignant mass: irregular or spiculated margin, taller than wide, heterogeneous and very hypoechoic, with
  posterior acoustic shadowing;
- a normal image has no mass;
- speckle is the magnitude of a low-pass complex Gaussian field (Rayleigh statistics), laterally elongated.

The scanner is a :class:`SiteProfile` (speckle size, point-spread blur, depth gain, log-compression, overall gain,
lesion contrast). ``SITES["a"]`` is the default site (the images every earlier version generated, draw for draw);
``SITES["b"]`` is a second hospital's scanner with coarser, blurrier speckle, a TGC profile that brightens the near
field and darkens the far field, a wider dynamic range and fainter masses: a model trained on site A loses CorLoc
on it (tests/test_site_adaptation.py). A site changes only deterministic steps, so both sites draw the same random
numbers and a seed gives the same anatomy at either site.

:func:`write_phantom_dataset` writes the images in BUSI's layout (``<root>/{benign,malignant,normal}/<label>
(<i>).png`` and ``<label> (<i>)_mask.png`` / ``_mask_1.png``), so every reader is exercised on it.
"""
import os
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import cv2
import numpy as np

from .labels import BENIGN, IMAGE_LABEL_NAMES, IMAGE_LABELS, MALIGNANT, NORMAL


@dataclass
class PhantomImage:
    """One generated image. ``image``: uint8 (H, W); ``masks``: list of bool (H, W), one per lesion."""

    image: np.ndarray
    masks: list
    image_label: int  # 0 normal, 1 benign, 2 malignant


@dataclass(frozen=True)
class SiteProfile:
    """How one site's scanner renders the phantom's tissue (the anatomy is drawn independently of it).

    Attributes:
        speckle_sigma: (lateral, axial) Gaussian low-pass of the complex speckle field, pixels (speckle size).
        psf_blur: extra Gaussian blur of the echo signal, pixels (0: none).
        depth_gain: TGC-like gain of the signal at evenly spaced depths from top to bottom row (linear in
            between); empty: flat.
        compression: ``c`` of the log compression ``log(1 + c * s) / log(1 + c * white)``: larger is a wider
            dynamic range (brighter, flatter grey levels).
        white: the signal level shown as white.
        gain: (low, high) of the uniformly drawn overall display gain.
        lesion_contrast: a mass's echogenicity is ``tissue - lesion_contrast * (tissue - mass)`` with tissue 0.5:
            1 keeps the default contrast, smaller makes masses fainter.
    """

    speckle_sigma: Tuple[float, float] = (1.6, 0.7)
    psf_blur: float = 0.0
    depth_gain: Tuple[float, ...] = ()
    compression: float = 12.0
    white: float = 2.2
    gain: Tuple[float, float] = (0.85, 1.0)
    lesion_contrast: float = 1.0


SITES = {
    "a": SiteProfile(),
    "b": SiteProfile(speckle_sigma=(2.4, 1.2), psf_blur=0.8, depth_gain=(2.2, 1.0, 0.45), compression=60.0,
                     gain=(1.05, 1.2), lesion_contrast=0.75),
}


def site_profile(site: Union[str, SiteProfile, None]) -> SiteProfile:
    """A :class:`SiteProfile` from a name of :data:`SITES`, a profile, or None (site "a")."""
    if site is None:
        return SITES["a"]
    if isinstance(site, SiteProfile):
        return site
    if site not in SITES:
        raise ValueError(f"unknown phantom site {site!r}; choose from {sorted(SITES)}")
    return SITES[site]


def _smooth_noise(rng, shape, sigma):
    field = rng.standard_normal(shape).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    return field / (field.std() + 1e-6)


def _wavy_boundary(rng, width, depth, amplitude):
    x = np.arange(width, dtype=np.float32)
    period = rng.uniform(0.6, 1.6) * width
    return depth + amplitude * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))


def _tissue(rng, h, w, lobules=2):
    """Echogenicity map (H, W) in roughly [0, 1.2] and the depth range (y0, y1) of the glandular layer."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    skin = _wavy_boundary(rng, w, rng.uniform(0.03, 0.06) * h, 0.01 * h)
    fat = _wavy_boundary(rng, w, rng.uniform(0.15, 0.25) * h, 0.03 * h)
    gland = _wavy_boundary(rng, w, rng.uniform(0.72, 0.82) * h, 0.04 * h)
    echo = np.full((h, w), 0.5, np.float32)
    echo = np.where(yy < skin, 0.15, echo)
    echo = np.where((yy >= skin) & (yy < skin + 0.015 * h + 2), 1.1, echo)  # skin line
    echo = np.where((yy >= skin + 0.015 * h + 2) & (yy < fat), 0.3, echo)  # subcutaneous fat
    glandular = 0.55 + 0.12 * _smooth_noise(rng, (h, w), 0.04 * w)
    echo = np.where((yy >= fat) & (yy < gland), glandular, echo)
    striation = 0.45 + 0.1 * np.sin(2 * np.pi * yy / rng.uniform(6, 12) + _smooth_noise(rng, (h, w), 8))
    echo = np.where(yy >= gland, striation, echo)
    for _ in range(rng.integers(0, lobules + 1)):  # hypoechoic fat lobules, no posterior effect
        cy = rng.uniform(fat.mean(), gland.mean())
        cx = rng.uniform(0, w)
        a, b = rng.uniform(0.05, 0.12) * w, rng.uniform(0.02, 0.05) * h
        lobule = ((np.arange(w)[None] - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
        echo = np.where(lobule, echo * 0.6, echo)
    return echo.astype(np.float32), (float(fat.mean()), float(gland.mean()))


def _mass_outline(rng, irregular, tall, cx, cy, size, n=360):
    """Polygon (n, 2) of a mass margin: irregular / spiculated or smooth, taller or wider than tall.
    ``size`` is the mean radius in pixels."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if irregular:
        r = np.ones(n)
        for k in range(2, 9):  # irregular, lobulated margin
            r += rng.uniform(0.02, 0.09) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.6:  # spiculations
            for _ in range(rng.integers(5, 12)):
                phi = rng.uniform(0, 2 * np.pi)
                d = np.angle(np.exp(1j * (theta - phi)))
                r += rng.uniform(0.15, 0.45) * np.exp(-0.5 * (d / 0.035) ** 2)
    else:
        r = np.ones(n)
        for k in range(2, 4):  # smooth, gently lobulated
            r += rng.uniform(0.0, 0.03) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    sx, sy = 1.0, rng.uniform(1.2, 1.6) if tall else rng.uniform(0.5, 0.8)
    tilt = np.deg2rad(rng.uniform(-15, 15))
    x, y = sx * r * np.cos(theta), sy * r * np.sin(theta)
    x, y = x * np.cos(tilt) - y * np.sin(tilt), x * np.sin(tilt) + y * np.cos(tilt)
    scale = size / np.sqrt(sx * sy)
    return np.stack([cx + scale * x, cy + scale * y], axis=1)


def _add_mass(rng, echo, label, layer, ambiguity=0.0, lesion_contrast=1.0):
    """Draw one mass of class ``label`` into ``echo``. Each sign (margin, orientation, posterior effect) is
    the other class's with probability ``ambiguity / 2``, and the mass-to-tissue contrast drops with it (and with
    ``lesion_contrast`` < 1). Returns (echo, mask or None)."""
    h, w = echo.shape
    malignant = label == MALIGNANT

    def sign():  # the class's own sign, or (with probability ambiguity / 2) the other class's
        return malignant != (rng.random() < ambiguity / 2)

    irregular, tall, shadow = sign(), sign(), sign()
    size = rng.uniform(0.06, 0.16) * min(h, w) * (1.0 if malignant else 1.3)
    cy = rng.uniform(layer[0] + 0.5 * size, max(layer[0] + 0.5 * size + 1, layer[1] - 0.3 * size))
    cx = rng.uniform(0.2 * w, 0.8 * w)
    outline = _mass_outline(rng, irregular, tall, cx, cy, size)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    mask = mask.astype(bool)
    if not mask.any():
        return echo, None
    ys, xs = np.nonzero(mask)
    x0, x1, bottom = xs.min(), xs.max() + 1, ys.max() + 1
    inside = 0.08 + 0.06 * _smooth_noise(rng, (h, w), 3) if malignant else 0.14 + 0.02 * _smooth_noise(rng, (h, w), 6)
    inside = inside + rng.uniform(0, 0.25) * ambiguity  # fainter masses
    if lesion_contrast != 1.0:
        inside = 0.5 - lesion_contrast * (0.5 - inside)
    # Posterior effect: a column below the mass, fading with depth; shadowing (x0.35) or enhancement (x1.45).
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None]
    column = np.clip(1 - np.abs(xx - 0.5 * (x0 + x1)) / (0.5 * (x1 - x0) + 1e-3), 0, 1) ** 0.5
    below = np.clip((yy - (bottom - 0.2 * (bottom - ys.min()))) / 4.0, 0, 1) * np.exp(-np.maximum(yy - bottom, 0) / (0.8 * h))
    gain = (0.35 if shadow else 1.45) - 1.0
    echo = echo * (1 + gain * column * below)
    echo = np.where(mask, np.clip(inside, 0.02, None), echo)
    return echo.astype(np.float32), mask


def generate_image(rng: np.random.Generator, image_label: int, height: int = 256, width: int = 320,
                   second_lesion_prob: float = 0.0, ambiguity: float = 0.0,
                   site: Union[str, SiteProfile, None] = None) -> PhantomImage:
    """One phantom image of the given label (0 normal, 1 benign, 2 malignant). Returns a :class:`PhantomImage`.

    ``ambiguity`` in [0, 1]: 0 gives textbook signs; larger values make masses fainter, mix the two classes'
    signs (each sign is the other class's with probability ambiguity / 2) and add mass-like fat lobules.
    ``site``: the scanner (:func:`site_profile`: a name of :data:`SITES` or a :class:`SiteProfile`; default "a").
    """
    profile = site_profile(site)
    if image_label not in IMAGE_LABELS:
        raise ValueError(f"image_label must be 0, 1 or 2, not {image_label!r}")
    if not 0 <= ambiguity <= 1:
        raise ValueError(f"ambiguity must be in [0, 1], not {ambiguity!r}")
    echo, layer = _tissue(rng, height, width, lobules=2 + int(round(4 * ambiguity)))
    masks = []
    if image_label != NORMAL:
        n_lesions = 2 if rng.random() < second_lesion_prob else 1
        for _ in range(n_lesions):
            echo, mask = _add_mass(rng, echo, image_label, layer, ambiguity, profile.lesion_contrast)
            if mask is not None and not any((mask & m).any() for m in masks):
                masks.append(mask)
    # Fully developed speckle: Rayleigh-distributed magnitude of a laterally correlated complex field.
    sx, sy = profile.speckle_sigma
    re = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sx, sigmaY=sy)
    im = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sx, sigmaY=sy)
    speckle = np.sqrt(re**2 + im**2)
    speckle /= speckle.mean()
    depth = np.arange(height, dtype=np.float32)[:, None] / height
    attenuation = np.exp(-rng.uniform(0.6, 1.4) * depth)
    signal = np.clip(echo, 0.01, None) * speckle * attenuation
    if profile.psf_blur > 0:
        signal = cv2.GaussianBlur(signal.astype(np.float32), (0, 0), profile.psf_blur)
    if profile.depth_gain:
        knots = np.linspace(0.0, 1.0, len(profile.depth_gain))
        signal = signal * np.interp(depth[:, 0], knots, profile.depth_gain).astype(np.float32)[:, None]
    c = profile.compression
    image = np.log1p(c * signal) / np.log1p(c * profile.white)  # log compression, ``white`` maps to white
    image = np.clip(255 * rng.uniform(*profile.gain) * image, 0, 255).astype(np.uint8)
    return PhantomImage(image=image, masks=masks, image_label=image_label)


def write_phantom_dataset(root: str, counts: Sequence[int] = (20, 40, 40), height: int = 256, width: int = 320,
                          seed: int = 0, second_lesion_prob: float = 0.1, duplicate_fraction: float = 0.0,
                          conflicting_duplicates: int = 0, ambiguity: float = 0.0,
                          site: Union[str, SiteProfile, None] = None) -> int:
    """Write a phantom dataset in BUSI's layout. Returns the number of image files written.

    Args:
        root: output folder; ``<root>/{benign,malignant,normal}/`` are created.
        counts: images per label (normal, benign, malignant).
        height, width: image size in pixels.
        seed: everything is deterministic from it.
        second_lesion_prob: chance that a benign / malignant image gets a second lesion (``_mask_1.png``).
        duplicate_fraction: this fraction of images also gets a near-duplicate copy (shifted by a pixel,
            brightness changed) in the same folder, as BUSI has.
        conflicting_duplicates: this many benign images also get a near-duplicate in the malignant folder
            (BUSI's conflicting labels).
        ambiguity: how much the classes' signs overlap (see :func:`generate_image`).
        site: the scanner (a name of :data:`SITES` or a :class:`SiteProfile`; default "a").
    """
    site_profile(site)  # an unknown site fails before anything is written
    rng = np.random.default_rng(seed)
    written = 0
    next_index = {name: 1 for name in IMAGE_LABEL_NAMES}

    def save(label_name, image, masks):
        nonlocal written
        folder = os.path.join(root, label_name)
        os.makedirs(folder, exist_ok=True)
        stem = f"{label_name} ({next_index[label_name]})"
        next_index[label_name] += 1
        cv2.imwrite(os.path.join(folder, stem + ".png"), image)
        mask_list = masks if masks else [np.zeros(image.shape, bool)]
        for k, mask in enumerate(mask_list):
            suffix = "_mask.png" if k == 0 else f"_mask_{k}.png"
            cv2.imwrite(os.path.join(folder, stem + suffix), mask.astype(np.uint8) * 255)
        written += 1

    def near_duplicate(image, masks):
        shifted = np.roll(image, 1, axis=1).astype(np.int16) + int(rng.integers(-6, 7))
        return np.clip(shifted, 0, 255).astype(np.uint8), [np.roll(m, 1, axis=1) for m in masks]

    conflicts_left = conflicting_duplicates
    for label, count in enumerate(counts):
        for _ in range(count):
            sample = generate_image(rng, label, height, width, second_lesion_prob, ambiguity, site)
            save(IMAGE_LABEL_NAMES[label], sample.image, sample.masks)
            if rng.random() < duplicate_fraction:
                save(IMAGE_LABEL_NAMES[label], *near_duplicate(sample.image, sample.masks))
            if label == BENIGN and conflicts_left > 0:
                save("malignant", *near_duplicate(sample.image, sample.masks))
                conflicts_left -= 1
    return written
