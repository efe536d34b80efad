"""Groups near-duplicate images by perceptual hash, so that a group never straddles a split.

Two images are near-duplicates when the Hamming distance of their 64-bit perceptual hashes (DCT hash of the
grayscale image, ``imagehash.phash``) is at most ``max_distance``; groups are the connected components of
that relation (union-find, so a chain of near-duplicates is one group).
"""
import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm


def perceptual_hashes(paths, progress=True):
    """64-bit perceptual hashes of the images, as a bool array (N, 64)."""
    bits = []
    for path in tqdm(paths, desc="hashing images", disable=not progress):
        with Image.open(path) as im:
            bits.append(imagehash.phash(im.convert("L")).hash.reshape(-1))
    return np.array(bits, dtype=bool).reshape(len(paths), 64)


def group_near_duplicates(hashes, max_distance=6):
    """Group ids (N,) int: images i and j share a group when linked by a chain of pairs at Hamming distance
    <= ``max_distance``. Group ids are 0..G-1 in order of first appearance."""
    hashes = np.asarray(hashes, dtype=bool)
    n = len(hashes)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    packed = np.packbits(hashes, axis=1)
    for i in range(n - 1):
        distance = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(1)
        for j in np.nonzero(distance <= max_distance)[0] + i + 1:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    _, group_ids = np.unique(roots, return_inverse=True)
    # renumber in order of first appearance
    order = {g: k for k, g in enumerate(dict.fromkeys(group_ids.tolist()))}
    return np.array([order[g] for g in group_ids.tolist()], dtype=np.int64)
