"""Boxes from binary lesion masks.

A mask file holds one lesion (BUSI adds ``_mask_1.png``, ``_mask_2.png`` for further lesions). A mask whose
lesion falls into several connected components (a lesion cut by a shadow, or stray annotation pixels) gives
one box around the components that are not specks: components smaller than ``min_component_fraction`` of
the largest one are ignored as annotation noise. ``mode="separate"`` instead gives one box per component.
"""
import os
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from .errors import DatasetError


def read_mask(path: Union[str, os.PathLike], expected_hw: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a mask image as a boolean array (H, W); nonzero = lesion. Raises DatasetError naming the file."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(path, "cannot read mask image (missing, unreadable or not an image)")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if expected_hw is not None and tuple(mask.shape[:2]) != tuple(expected_hw):
        raise DatasetError(
            path, f"mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is {expected_hw[1]}x{expected_hw[0]}"
        )
    return mask > 0


def boxes_from_mask(mask: np.ndarray, mode: str = "union", min_component_fraction: float = 0.05) -> np.ndarray:
    """Boxes (XYXY_ABS, pixel edges: a single pixel at (x, y) is [x, y, x+1, y+1]) of the lesion in ``mask``.

    Args:
        mask: (H, W) array; nonzero = lesion.
        mode: "union" - one box around all kept components (one lesion per mask file);
            "separate" - one box per kept component.
        min_component_fraction: components with fewer pixels than this fraction of the largest
            component are dropped.
    Returns:
        float32 array (N, 4): N = 0 for an empty mask, 1 in "union" mode, the component count in "separate".
    """
    if mode not in ("union", "separate"):
        raise ValueError(f"mode must be 'union' or 'separate', not {mode!r}")
    mask = np.asarray(mask) > 0
    if not mask.any():
        return np.zeros((0, 4), dtype=np.float32)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    stats = stats[1:]  # row 0 is the background
    areas = stats[:, cv2.CC_STAT_AREA]
    stats = stats[areas >= min_component_fraction * areas.max()]
    x0 = stats[:, cv2.CC_STAT_LEFT]
    y0 = stats[:, cv2.CC_STAT_TOP]
    x1 = x0 + stats[:, cv2.CC_STAT_WIDTH]
    y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT]
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    if mode == "union":
        boxes = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])[None]
    return boxes
