"""Groups near-duplicate images by perceptual hash, so that a group never straddles a split.

Two images are near-duplicates when the Hamming distance of their 64-bit perceptual hashes (DCT hash of the
grayscale image, ``imagehash.phash``) is at most ``max_distance``; groups are the connected components of
that relation (scipy's ``connected_components``, so a chain of near-duplicates is one group).
"""
from typing import Sequence

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm


def perceptual_hashes(paths: Sequence[str], progress: bool = True) -> np.ndarray:
    """64-bit perceptual hashes of the images, as a bool array (N, 64)."""
    bits = []
    for path in tqdm(paths, desc="hashing images", disable=None if progress else True):
        with Image.open(path) as im:
            bits.append(imagehash.phash(im.convert("L")).hash.reshape(-1))
    return np.array(bits, dtype=bool).reshape(len(paths), 64)


def group_near_duplicates(hashes: np.ndarray, max_distance: int = 6) -> np.ndarray:
    """Group ids (N,) int64: images i and j share a group when linked by a chain of pairs at Hamming distance
    <= ``max_distance``. ``hashes``: (N, 64) bool (:func:`perceptual_hashes`). Group ids are 0..G-1 in order of
    first appearance."""
    hashes = np.asarray(hashes, dtype=bool)
    n = len(hashes)
    packed = np.packbits(hashes, axis=1)
    rows, cols = [], []
    for i in range(n - 1):  # one row of the upper triangle at a time: memory O(N), not O(N^2 * 64)
        distance = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(1)
        near = np.nonzero(distance <= max_distance)[0] + i + 1
        rows.append(np.full(len(near), i))
        cols.append(near)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    # renumber in order of first appearance
    _, first = np.unique(components, return_index=True)
    order = np.empty(len(first), np.int64)
    order[np.argsort(first)] = np.arange(len(first))
    return order[components].astype(np.int64)
