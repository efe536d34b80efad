"""Near-duplicate evidence from local features: ORB keypoints, ratio-tested matches, a RANSAC similarity.

Two images show the same lesion (a crop, a shift, a rescale or an adjacent frame of one scan) when enough of
their ORB keypoints agree on one plausible similarity transform (uniform scale, rotation, shift; no shear):

1. :func:`orb_features`: each image is resized so that its longer side is ``OrbParams.side`` pixels and ORB
   keypoints are detected away from a thin border (``border``: scanner UI, rulers and depth scales sit there);
   features are computed once per image and sorted by detector response.
2. :func:`shortlist_pairs`: every pair of images is scored cheaply by the number of ratio-tested matches among
   the ``shortlist_features`` strongest keypoints of each; each image keeps its ``shortlist_per_image`` best
   partners as candidates.
3. :func:`verify_pair`: all features of a candidate pair are matched (ratio test), a similarity transform is
   fitted with RANSAC (``cv2.estimateAffinePartial2D``) and the pair is linked when the transform is plausible
   (scale within ``scale_range``, rotation within ``max_rotation_deg``) and its inliers are many and spread
   over the image: burnt-in text ("RT AXILLA"), caliper crosses and logos match between different patients,
   but their inliers crowd into small patches, thin bands (a line of text) or the edges (rulers, depth
   scales). The spread tests count only inliers inside the interior of both images (``interior_margin`` of
   each side left out): at least ``min_interior_inliers`` of them, holding at least ``min_cell_inliers`` inliers
   in each of ``min_cells`` cells of a ``grid`` x ``grid`` partition, with a 10-90 percentile extent of at least
   ``min_extent`` of the image's width and of its height, in both images. A near-identity transform (the
   overlay of one scanner sits at the same place in every image) needs ``min_identity_extent``.

Coordinates are pixels of the resized image (longer side ``side``) unless said otherwise.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm


@dataclass(frozen=True)
class OrbParams:
    """Parameters of the ORB near-duplicate test (defaults tuned by eye on BUSI, see the module docstring)."""

    side: int = 256                      # longer side of the resized image, pixels
    border: float = 0.05                 # no keypoint within this fraction of the width / height of each edge
    n_features: int = 800                # ORB keypoints per image (strongest by response)
    fast_threshold: int = 10             # ORB's FAST threshold (grey levels)
    shortlist_features: int = 200        # strongest keypoints used to score every pair
    shortlist_per_image: int = 12        # best-scoring partners of each image that are verified
    ratio: float = 0.8                   # Lowe's ratio test: nearest / second nearest Hamming distance
    ransac_threshold: float = 4.0        # RANSAC reprojection threshold, pixels
    min_inliers: int = 12                # RANSAC inliers needed to link a pair
    scale_range: Tuple[float, float] = (0.5, 2.0)   # plausible scale of the transform
    max_rotation_deg: float = 10.0       # plausible rotation, degrees
    interior_margin: float = 0.15        # the interior: the image less this fraction of each side
    min_interior_inliers: int = 8        # inliers inside the interior of both images
    grid: int = 4                        # the spread grid is grid x grid cells over each image
    min_cells: int = 2                   # cells holding >= min_cell_inliers interior inliers, in each image
    min_cell_inliers: int = 2
    min_extent: float = 0.1              # 10-90 percentile extent of the interior inliers / width and height
    identity_tolerance: float = 0.01     # |scale - 1| and |shift| (fractions) of a near-identity transform
    min_identity_extent: float = 0.2     # min_extent for a near-identity transform (overlays at the same place)


@dataclass
class ImageFeatures:
    """ORB features of one image. ``points``: (K, 2) float32 x, y in pixels of the resized image;
    ``descriptors``: (K, 32) uint8; both sorted by decreasing detector response. ``size``: (height, width) of
    the resized image."""

    points: np.ndarray
    descriptors: np.ndarray
    size: Tuple[int, int]


@dataclass
class MatchEvidence:
    """What :func:`verify_pair` found for images a and b. ``matches``: ratio-tested matches; ``inliers``: RANSAC
    inliers of the similarity a -> b (0 when none was fitted); ``scale``, ``rotation_deg``; ``shift``: (2,) the
    translation in fractions of b's (width, height); ``cells``: the smaller of the two images' counts of grid
    cells holding >= ``min_cell_inliers`` inliers; ``extent``: the smallest 10-90 percentile extent of the
    inliers (fraction of width or height, over both images); ``linked``: every test passed."""

    matches: int = 0
    inliers: int = 0
    scale: float = float("nan")
    rotation_deg: float = float("nan")
    shift: Tuple[float, float] = (float("nan"), float("nan"))
    interior: int = 0
    cells: int = 0
    extent: float = 0.0
    linked: bool = False

    def as_dict(self) -> dict:
        """JSON-ready dict (floats rounded)."""
        return {"matches": self.matches, "inliers": self.inliers, "scale": round(self.scale, 4),
                "rotation_deg": round(self.rotation_deg, 2), "shift": [round(s, 4) for s in self.shift],
                "interior": self.interior, "cells": self.cells, "extent": round(self.extent, 4), "linked": self.linked}


def read_gray(path: str) -> np.ndarray:
    """The image at ``path`` as a uint8 (H, W) grayscale array (read with PIL, as the perceptual hash is)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def orb_features(gray: np.ndarray, params: OrbParams = OrbParams()) -> ImageFeatures:
    """ORB features of a uint8 (H, W) image resized to a longer side of ``params.side`` pixels, detected outside
    a border of ``params.border`` of each side."""
    scale = params.side / max(gray.shape)
    h, w = max(1, int(round(gray.shape[0] * scale))), max(1, int(round(gray.shape[1] * scale)))
    small = cv2.resize(np.ascontiguousarray(gray, dtype=np.uint8), (w, h), interpolation=cv2.INTER_AREA)
    mask = np.zeros((h, w), np.uint8)
    by, bx = int(round(params.border * h)), int(round(params.border * w))
    mask[by:h - by, bx:w - bx] = 255
    orb = cv2.ORB_create(nfeatures=params.n_features, edgeThreshold=15, patchSize=31,
                         fastThreshold=params.fast_threshold)
    keypoints, descriptors = orb.detectAndCompute(small, mask)
    if descriptors is None or not keypoints:
        return ImageFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (h, w))
    order = np.argsort([-k.response for k in keypoints], kind="stable")
    points = np.array([keypoints[k].pt for k in order], np.float32).reshape(-1, 2)
    return ImageFeatures(points, descriptors[order], (h, w))


def _ratio_matches(da: np.ndarray, db: np.ndarray, ratio: float) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (M,), (M,) of the features of a and b whose nearest neighbours (Hamming) pass the ratio test."""
    if len(da) < 1 or len(db) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, nearest = cv2.batchDistance(da, db, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    keep = np.nonzero(dist[:, 0] < ratio * dist[:, 1])[0]
    return keep, nearest[keep, 0].astype(np.int64)


def shortlist_pairs(features: Sequence[ImageFeatures], params: OrbParams = OrbParams(),
                    progress: bool = True) -> np.ndarray:
    """Candidate pairs (P, 2) int64, i < j, sorted: each image's ``shortlist_per_image`` partners with the most
    ratio-tested matches among the ``shortlist_features`` strongest keypoints (pairs with none are dropped)."""
    n = len(features)
    top = [f.descriptors[:params.shortlist_features] for f in features]
    score = np.zeros((n, n), np.int32)
    for i in tqdm(range(n), desc="shortlisting pairs", disable=None if progress else True):
        for j in range(i + 1, n):
            score[i, j] = score[j, i] = len(_ratio_matches(top[i], top[j], params.ratio)[0])
    pairs = set()
    k = min(params.shortlist_per_image, n - 1)
    for i in range(n):
        if k <= 0:
            break
        best = np.argpartition(-score[i], k)[:k] if k < n else np.arange(n)
        pairs.update((min(i, j), max(i, j)) for j in best.tolist() if j != i and score[i, j] > 0)
    return np.array(sorted(pairs), np.int64).reshape(-1, 2)


def _inside(points: np.ndarray, size: Tuple[int, int], margin: float) -> np.ndarray:
    """(K,) bool: which of the (K, 2) points lie in the interior of an image of ``size`` (h, w)."""
    h, w = size
    return ((points[:, 0] >= margin * w) & (points[:, 0] <= (1 - margin) * w)
            & (points[:, 1] >= margin * h) & (points[:, 1] <= (1 - margin) * h))


def _spread(points: np.ndarray, size: Tuple[int, int], params: OrbParams) -> Tuple[int, float]:
    """(cells holding >= min_cell_inliers points of a grid x grid partition, min 10-90 percentile extent as a
    fraction of width / height) of (K, 2) points in an image of ``size`` (h, w)."""
    h, w = size
    if len(points) == 0:
        return 0, 0.0
    g = params.grid
    col = np.clip((points[:, 0] * g / w).astype(int), 0, g - 1)
    row = np.clip((points[:, 1] * g / h).astype(int), 0, g - 1)
    cells = int((np.bincount(row * g + col, minlength=g * g) >= params.min_cell_inliers).sum())
    lo, hi = np.percentile(points, [10, 90], axis=0)
    return cells, float(min((hi[0] - lo[0]) / w, (hi[1] - lo[1]) / h))


def verify_pair(a: ImageFeatures, b: ImageFeatures, params: OrbParams = OrbParams()) -> MatchEvidence:
    """Match all features of a to b, fit a similarity a -> b with RANSAC and test it (module docstring)."""
    qa, qb = _ratio_matches(a.descriptors, b.descriptors, params.ratio)
    evidence = MatchEvidence(matches=len(qa))
    if len(qa) < max(3, params.min_inliers):
        return evidence
    pa, pb = a.points[qa], b.points[qb]
    transform, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC,
                                                     ransacReprojThreshold=params.ransac_threshold,
                                                     maxIters=2000, confidence=0.995)
    if transform is None or inliers is None:
        return evidence
    inliers = inliers.ravel().astype(bool)
    evidence.inliers = int(inliers.sum())
    evidence.scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    evidence.rotation_deg = float(np.degrees(np.arctan2(transform[1, 0], transform[0, 0])))
    evidence.shift = (float(transform[0, 2] / b.size[1]), float(transform[1, 2] / b.size[0]))
    pa, pb = pa[inliers], pb[inliers]
    interior = _inside(pa, a.size, params.interior_margin) & _inside(pb, b.size, params.interior_margin)
    evidence.interior = int(interior.sum())
    cells_a, extent_a = _spread(pa[interior], a.size, params)
    cells_b, extent_b = _spread(pb[interior], b.size, params)
    evidence.cells, evidence.extent = min(cells_a, cells_b), min(extent_a, extent_b)
    tol = params.identity_tolerance
    near_identity = (abs(evidence.scale - 1) <= tol and max(abs(s) for s in evidence.shift) <= tol
                     and abs(evidence.rotation_deg) <= 1.0)
    min_extent = params.min_identity_extent if near_identity else params.min_extent
    lo, hi = params.scale_range
    evidence.linked = bool(evidence.inliers >= params.min_inliers and lo <= evidence.scale <= hi
                           and abs(evidence.rotation_deg) <= params.max_rotation_deg
                           and evidence.interior >= params.min_interior_inliers
                           and evidence.cells >= params.min_cells and evidence.extent >= min_extent)
    return evidence


def orb_evidence(features: Sequence[ImageFeatures], params: OrbParams = OrbParams(), progress: bool = True,
                 candidates: Optional[np.ndarray] = None) -> List[Tuple[int, int, MatchEvidence]]:
    """(i, j, evidence) for every candidate pair i < j (:func:`shortlist_pairs` unless ``candidates`` (P, 2) is
    given), linked or not; the linked ones are those with ``evidence.linked``."""
    if candidates is None:
        candidates = shortlist_pairs(features, params, progress)
    out = []
    for i, j in tqdm(candidates.tolist(), desc="verifying pairs", disable=None if progress else True):
        out.append((i, j, verify_pair(features[i], features[j], params)))
    return out
