"""Groups near-duplicate images (the same lesion saved twice, cropped, shifted, rescaled, or an adjacent frame),
so that a group never straddles a split or a fold.

Two evidences link a pair of images:

- ``phash``: the Hamming distance of their 64-bit perceptual hashes (DCT hash of the grayscale image,
  ``imagehash.phash``) is at most ``max_hash_distance``. Finds copies and re-encodings, misses crops and shifts.
- ``orb``: local-feature matching with geometric verification (:mod:`.feature_matching`): enough ORB matches,
  spread over the image, agree on one plausible similarity transform. Finds crops, shifts, rescales and
  adjacent frames; ignores matches on burnt-in text, calipers and logos.

``method`` "phash" uses the first only (the original grouping), "phash+orb" (the default) links a
pair when either says so. Groups are the connected components of the linked pairs (scipy's
``connected_components``: a chain of near-duplicates is one group), numbered in order of first appearance.

Entry points: :func:`near_duplicate_groups` (paths -> group ids), :func:`near_duplicate_pairs` (the linked pairs
with their evidence, for reports), :func:`duplicate_parameters` (the method and its parameters, for reports).
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from .feature_matching import MatchEvidence, OrbParams, orb_evidence, orb_features, read_gray

DUPLICATE_METHODS = ("phash", "phash+orb")
DEFAULT_DUPLICATE_METHOD = "phash+orb"


def perceptual_hashes(paths: Sequence[str], progress: bool = True) -> np.ndarray:
    """64-bit perceptual hashes of the images, as a bool array (N, 64)."""
    bits = []
    for path in tqdm(paths, desc="hashing images", disable=None if progress else True):
        with Image.open(path) as im:
            bits.append(imagehash.phash(im.convert("L")).hash.reshape(-1))
    return np.array(bits, dtype=bool).reshape(len(paths), 64)


def hash_pairs(hashes: np.ndarray, max_distance: int = 6) -> Tuple[np.ndarray, np.ndarray]:
    """Pairs (P, 2) int64 (i < j, sorted) of hashes at Hamming distance <= ``max_distance``, and their distances
    (P,) int64. ``hashes``: (N, 64) bool (:func:`perceptual_hashes`)."""
    packed = np.packbits(np.asarray(hashes, dtype=bool), axis=1)
    pairs, distances = [], []
    for i in range(len(packed) - 1):  # one row of the upper triangle at a time: memory O(N), not O(N^2 * 64)
        distance = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(1)
        near = np.nonzero(distance <= max_distance)[0]
        pairs += [(i, i + 1 + k) for k in near.tolist()]
        distances += distance[near].tolist()
    return np.array(pairs, np.int64).reshape(-1, 2), np.array(distances, np.int64)


def groups_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """Group ids (n,) int64 of the connected components of the pairs (P, 2) over images 0..n-1, numbered
    0..G-1 in order of first appearance."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    _, first = np.unique(components, return_index=True)
    order = np.empty(len(first), np.int64)
    order[np.argsort(first)] = np.arange(len(first))
    return order[components].astype(np.int64)


def group_near_duplicates(hashes: np.ndarray, max_distance: int = 6) -> np.ndarray:
    """Group ids (N,) int64 by perceptual hash only: images i and j share a group when linked by a chain of pairs
    at Hamming distance <= ``max_distance``. ``hashes``: (N, 64) bool (:func:`perceptual_hashes`). Group ids are
    0..G-1 in order of first appearance."""
    hashes = np.asarray(hashes, dtype=bool)
    return groups_from_pairs(len(hashes), hash_pairs(hashes, max_distance)[0])


@dataclass
class LinkedPair:
    """Images ``i`` < ``j`` (indices into the paths) linked as near-duplicates. ``evidence``: "phash", "orb" or
    "phash+orb" (what linked them); ``hamming``: pHash distance (bits of 64); ``orb``: the feature-matching
    evidence when the pair was verified (:class:`~.feature_matching.MatchEvidence`), else None."""

    i: int
    j: int
    evidence: str
    hamming: int
    orb: Optional[MatchEvidence] = field(default=None)

    def as_dict(self, paths: Optional[Sequence[str]] = None) -> dict:
        """JSON-ready dict; with ``paths``, the two files are named too."""
        out = {"i": self.i, "j": self.j, "evidence": self.evidence, "hamming": self.hamming,
               "orb": self.orb.as_dict() if self.orb is not None else None}
        if paths is not None:
            out.update(file_a=str(paths[self.i]), file_b=str(paths[self.j]))
        return out


def _check_method(method: str) -> None:
    if method not in DUPLICATE_METHODS:
        raise ValueError(f"near-duplicate method {method!r}: choose from {DUPLICATE_METHODS}")


def duplicate_parameters(method: str = DEFAULT_DUPLICATE_METHOD, max_hash_distance: int = 6,
                         orb: Optional[OrbParams] = None) -> Dict[str, object]:
    """The method and its parameters as a JSON-ready dict (for ``meta/report.json`` and benchmarks)."""
    _check_method(method)
    out: Dict[str, object] = {"method": method, "max_hash_distance": int(max_hash_distance)}
    if "orb" in method:
        out["orb"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(orb or OrbParams()).items()}
    return out


def near_duplicate_pairs(paths: Sequence[str], method: str = DEFAULT_DUPLICATE_METHOD, max_hash_distance: int = 6,
                         orb: Optional[OrbParams] = None, progress: bool = True,
                         all_verified: bool = False) -> List[LinkedPair]:
    """The linked pairs of the images at ``paths``, sorted by (i, j), with their evidence (module docstring).

    Every image is read once. With ``all_verified``, pairs that the feature matcher verified but did not link are
    returned too (``evidence`` "" unless pHash linked them): near misses, for benchmarks."""
    _check_method(method)
    params = orb or OrbParams()
    use_orb = "orb" in method
    hashes, features = [], []
    for path in tqdm(paths, desc="reading images", disable=None if progress else True):
        gray = read_gray(path)
        hashes.append(imagehash.phash(Image.fromarray(gray)).hash.reshape(-1))
        if use_orb:
            features.append(orb_features(gray, params))
    hashes = np.array(hashes, dtype=bool).reshape(len(paths), 64)
    packed = np.packbits(hashes, axis=1)

    def hamming(i, j):
        return int(np.unpackbits(packed[i] ^ packed[j]).sum())

    linked: Dict[Tuple[int, int], LinkedPair] = {}
    hp, hd = hash_pairs(hashes, max_hash_distance)
    for (i, j), d in zip(hp.tolist(), hd.tolist()):
        linked[(i, j)] = LinkedPair(i, j, "phash", int(d))
    if use_orb:
        for i, j, ev in orb_evidence(features, params, progress):
            pair = linked.get((i, j))
            if pair is not None:
                pair.orb = ev
                pair.evidence = "phash+orb" if ev.linked else "phash"
            elif ev.linked or all_verified:
                linked[(i, j)] = LinkedPair(i, j, "orb" if ev.linked else "", hamming(i, j), ev)
    return [linked[k] for k in sorted(linked)]


def near_duplicate_groups(paths: Sequence[str], method: str = DEFAULT_DUPLICATE_METHOD, max_hash_distance: int = 6,
                          orb: Optional[OrbParams] = None, progress: bool = True) -> np.ndarray:
    """Group ids (N,) int64 of the images at ``paths``: connected components of :func:`near_duplicate_pairs`,
    numbered 0..G-1 in order of first appearance."""
    pairs = near_duplicate_pairs(paths, method, max_hash_distance, orb, progress)
    return groups_from_pairs(len(paths), np.array([(p.i, p.j) for p in pairs if p.evidence], np.int64))


def read_confirmed_pairs(path: str, relpaths: Sequence[str]) -> np.ndarray:
    """Pairs (P, 2) of indices into ``relpaths`` that a person confirmed as the same lesion: the rows of the CSV
    ``path`` (columns ``file_a``, ``file_b``, ``same_lesion``; e.g. ``benchmarks/near_duplicates/labelled_pairs.csv``)
    with ``same_lesion`` 1, file names relative to the image root as in ``relpaths``. Rows with 0 are ignored (a
    detector link is not undone). Raises ValueError naming the file and line for a missing column, a bad value or a
    file name that is not in the pool."""
    import csv

    index = {name: i for i, name in enumerate(relpaths)}
    pairs = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file_a", "file_b", "same_lesion") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a same-lesion pairs file, missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            if row["same_lesion"].strip() not in ("0", "1"):
                raise ValueError(f"{path} line {line}: same_lesion must be 0 or 1, not {row['same_lesion']!r}")
            if row["same_lesion"].strip() == "0":
                continue
            unknown = [row[c] for c in ("file_a", "file_b") if row[c] not in index]
            if unknown:
                raise ValueError(f"{path} line {line}: {unknown} not in the image pool (names are relative to the "
                                 "image root, e.g. malignant/malignant (39).png)")
            pairs.append((index[row["file_a"]], index[row["file_b"]]))
    return np.array(pairs, np.int64).reshape(-1, 2)


def merge_confirmed_pairs(groups: np.ndarray, confirmed: np.ndarray) -> np.ndarray:
    """Group ids (N,) after also linking the ``confirmed`` pairs (P, 2) (:func:`read_confirmed_pairs`): the groups
    of a confirmed pair become one. Renumbered in order of first appearance."""
    _, first, inverse = np.unique(np.asarray(groups, np.int64), return_index=True, return_inverse=True)
    members = np.stack([np.arange(len(inverse)), first[inverse]], axis=1)  # each image linked to its group's first
    return groups_from_pairs(len(inverse), np.concatenate([members, np.asarray(confirmed, np.int64).reshape(-1, 2)]))
