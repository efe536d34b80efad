"""What in an ultrasound frame is not the scan: burnt-in overlays (caliper marks, text, corner markers, colour
marks) and the scan's field of view. Used to ask whether a detector looks at the annotation instead of the
tissue (:mod:`wssdl_d2.evaluation.detection_diagnostics`).

The overlay detector (:func:`overlay_mask`) is a simple, documented heuristic, not a trained model:

1. **Colour**: in a grayscale scan any pixel whose channels differ by at least ``color_min`` grey levels is an
   overlay (coloured calipers, text, Doppler boxes). Single-channel images have none.
2. **Bright thin marks**: caliper '+' / 'x' marks and text are drawn as near-white strokes one to three pixels
   wide with sharp edges *in both directions*; ultrasound speckle and tissue boundaries (fascia) are smeared
   sideways (the lateral resolution is worse than the axial one), so thin bright structures that also run
   *vertically* are rare in tissue. Seeds are pixels at least ``bright_min`` bright and ``contrast_min`` above a
   horizontal grey opening of width 5 (bright for less than 5 pixels across), widened by one pixel sideways (so
   diagonal strokes stay connected) and kept where they run at least ``min_run`` pixels vertically (a grey
   opening with a vertical line). Each seed is then grown into its connected stroke: pixels at least
   ``bright_min`` bright and ``grow_contrast`` above a 5 x 5 grey opening, dilated by one pixel, no farther than
   ``grow_px`` from a seed (so a mark touching a bright tissue line does not spread along it).

It misses overlays that are neither bright nor coloured (grey dotted lines, faint text) and strokes shorter than
``min_run`` pixels, so its counts are lower bounds. On BUSI (Egypt) it marks text, calipers and the corner
markers; on a sample of BrEaST scans (annotations removed at the source) it marks nothing.
"""
from typing import Tuple

import cv2
import numpy as np


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"expected an (H, W) or (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image.reshape(image.shape[:2])


def color_mask(image: np.ndarray, color_min: int = 40) -> np.ndarray:
    """(H, W) bool: pixels of an (H, W, 3) uint8 image whose channels differ by >= ``color_min`` grey levels
    (all False for a grayscale image, (H, W) or three equal channels)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        return np.zeros(image.shape[:2], bool)
    spread = image.max(axis=2).astype(np.int16) - image.min(axis=2)
    return spread >= color_min


def overlay_mask(image: np.ndarray, bright_min: int = 180, contrast_min: int = 50, grow_contrast: int = 40,
                 min_run: int = 6, grow_px: int = 6, color_min: int = 40) -> np.ndarray:
    """Burnt-in overlay pixels of one frame (the module docstring gives the method).

    Args:
        image: (H, W) or (H, W, 3) uint8 (BGR or RGB; colour only matters through channel differences).
        bright_min: grey level (0..255) an overlay stroke reaches at least.
        contrast_min: grey levels a seed pixel rises above its horizontal opening (width 5 px).
        grow_contrast: grey levels a stroke pixel rises above its 5 x 5 opening.
        min_run: vertical extent (px) a seed stroke needs.
        grow_px: how far (px, in x and y) a stroke may extend from its seeds.
        color_min: channel spread (grey levels) that makes a pixel coloured.
    Returns:
        (H, W) bool mask, True on overlay pixels.
    """
    gray = _gray(image)
    signed = gray.astype(np.int16)
    horizontal = cv2.morphologyEx(gray, cv2.MORPH_OPEN, np.ones((1, 5), np.uint8))
    seeds = ((signed - horizontal >= contrast_min) & (gray >= bright_min)).astype(np.uint8)
    seeds = cv2.dilate(seeds, np.ones((1, 3), np.uint8))
    seeds = cv2.morphologyEx(seeds, cv2.MORPH_OPEN, np.ones((min_run, 1), np.uint8))
    square = cv2.morphologyEx(gray, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    strokes = ((signed - square >= grow_contrast) & (gray >= bright_min)).astype(np.uint8)
    reach = cv2.dilate(seeds, np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8))
    strokes = (cv2.dilate(strokes, np.ones((3, 3), np.uint8)) & reach) | seeds
    count, labels = cv2.connectedComponents(strokes, connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[seeds > 0])] = True
    keep[0] = False
    return keep[labels] | color_mask(image, color_min)


def field_of_view_box(image: np.ndarray, dark_max: int = 10) -> Tuple[float, float, float, float]:
    """XYXY box (absolute pixels, exclusive right / bottom edge) of the scan's field of view: the bounding box of
    the largest connected region brighter than ``dark_max`` after a 5 x 5 opening (which drops text and marks
    on the black margin). The whole frame when no pixel is brighter. (H, W[, 3]) uint8 -> 4 floats."""
    gray = _gray(image)
    height, width = gray.shape
    lit = cv2.morphologyEx((gray > dark_max).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(lit, connectivity=8)
    if count < 2:
        return 0.0, 0.0, float(width), float(height)
    x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    return float(x), float(y), float(x + w), float(y + h)
