"""Reproducible train / val / test splits over near-duplicate groups, and nested strong subsets of train.

- Groups (not images) are assigned to splits, stratified by label, so near-duplicates stay on one side.
- Groups whose images carry different labels (conflicting labels) are excluded by default and reported.
- Cross-validation folds (:func:`assign_folds`) are made of whole groups too, stratified by label.
- The strong subset of train is the first ``ceil(fraction * n)`` images of a seeded per-label permutation, so
  for one seed the 10% subset lies inside the 20% subset, which lies inside 100%. A strong subset of a fixed
  number of images with boxes (:func:`strong_subset_count`, e.g. 10 boxed scans of a new site) is nested likewise.
"""
import math
from collections import defaultdict
from typing import Iterable, List, Set

import numpy as np
import numpy.typing as npt


def conflicting_groups(labels: npt.ArrayLike, group_ids: npt.ArrayLike) -> Set[int]:
    """Set of group ids whose images do not all carry the same label."""
    seen = defaultdict(set)
    for label, group in zip(labels, group_ids):
        seen[int(group)].add(int(label))
    return {g for g, s in seen.items() if len(s) > 1}


def split_by_groups(labels: npt.ArrayLike, group_ids: npt.ArrayLike, val_fraction: float = 0.2,
                    test_fraction: float = 0.0, seed: int = 0, exclude: Iterable[int] = ()) -> List[str]:
    """Assign each image to "train", "val", "test" or "excluded".

    Args:
        labels: (N,) image labels; a group's label is the label of its images.
        group_ids: (N,) near-duplicate group of each image.
        val_fraction, test_fraction: fraction of the groups of each label that go to val / test.
        seed: the split is a pure function of the inputs and this seed.
        exclude: group ids sent to "excluded" (e.g. conflicting-label groups).
    Returns:
        list of N split names.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"bad fractions: val {val_fraction}, test {test_fraction} (each in [0, 1), sum < 1)")
    rng = np.random.default_rng(seed)
    exclude = set(int(g) for g in exclude)
    label_of_group = {}
    for label, group in zip(labels, group_ids):
        label_of_group.setdefault(int(group), int(label))
    groups_of_label = defaultdict(list)
    for group, label in label_of_group.items():
        if group not in exclude:
            groups_of_label[label].append(group)
    split_of_group = {g: "excluded" for g in exclude}
    for label in sorted(groups_of_label):
        groups = sorted(groups_of_label[label])
        groups = [groups[i] for i in rng.permutation(len(groups))]
        n_test = int(round(test_fraction * len(groups)))
        n_val = int(round(val_fraction * len(groups)))
        for k, g in enumerate(groups):
            split_of_group[g] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return [split_of_group[int(g)] for g in group_ids]


def strong_subset(labels: npt.ArrayLike, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask (N,) of the images chosen as strong: per label, the first ceil(fraction * n) of a seeded
    permutation. Nested: for one seed, a smaller fraction selects a subset of a larger one."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"strong fraction must be in [0, 1], not {fraction}")
    labels = np.asarray(labels)
    chosen = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for label in sorted(set(labels.tolist())):
        index = np.nonzero(labels == label)[0]
        order = index[rng.permutation(len(index))]
        chosen[order[: math.ceil(fraction * len(index))]] = True
    return chosen


def strong_subset_count(labels: npt.ArrayLike, has_boxes: npt.ArrayLike, count: int, seed: int = 0) -> np.ndarray:
    """Boolean mask (N,) of ``count`` images chosen as strong among those with boxes (``has_boxes``), in proportion
    to their labels: per label, a seeded permutation gives each eligible image the rank ``(i + 0.5) / n_label``, and
    the ``count`` lowest ranks over all labels are chosen (ties: lower label first). Nested: for one seed, a smaller
    count selects a subset of a larger one. Raises ValueError when fewer than ``count`` images have boxes."""
    labels, has_boxes = np.asarray(labels), np.asarray(has_boxes, dtype=bool)
    if labels.shape != has_boxes.shape:
        raise ValueError(f"labels {labels.shape} and has_boxes {has_boxes.shape} differ in shape")
    if int(count) != count or count < 0:
        raise ValueError(f"the number of strong images must be an integer >= 0, not {count}")
    if count > int(has_boxes.sum()):
        raise ValueError(f"{count} strong images asked, but only {int(has_boxes.sum())} images have boxes")
    rng = np.random.default_rng(seed)
    keys = []  # (rank within its label, label, image index)
    for label in sorted(set(labels[has_boxes].tolist())):
        index = np.nonzero((labels == label) & has_boxes)[0]
        order = index[rng.permutation(len(index))]
        keys.extend(((i + 0.5) / len(order), label, int(j)) for i, j in enumerate(order))
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[[j for _, _, j in sorted(keys)[: int(count)]]] = True
    return chosen


def assign_folds(labels: npt.ArrayLike, group_ids: npt.ArrayLike, num_folds: int, seed: int = 0,
                 exclude: Iterable[int] = ()) -> np.ndarray:
    """Assign each image to one of ``num_folds`` cross-validation folds, by near-duplicate group, stratified by
    label.

    Per label, the groups are visited in a seeded random order and each goes to the fold that holds the fewest
    images of that label so far (ties: the fold with the fewest images in all, then the lowest index), so every
    fold gets about 1 / K of each label's images and a group never straddles folds.

    Args:
        labels: (N,) image labels; a group's label is the label of its first image.
        group_ids: (N,) near-duplicate group of each image.
        num_folds: K >= 2.
        seed: the assignment is a pure function of the inputs and this seed.
        exclude: group ids left out of every fold (e.g. conflicting-label groups), marked -1.
    Returns:
        (N,) int64 array: the fold of each image in [0, K), or -1 for excluded images.
    """
    if int(num_folds) != num_folds or num_folds < 2:
        raise ValueError(f"the number of folds must be an integer >= 2, not {num_folds}")
    labels, group_ids = np.asarray(labels), np.asarray(group_ids)
    if labels.shape != group_ids.shape:
        raise ValueError(f"labels {labels.shape} and group ids {group_ids.shape} differ in shape")
    exclude = set(int(g) for g in exclude)
    label_of_group, size_of_group = {}, defaultdict(int)
    for label, group in zip(labels.tolist(), group_ids.tolist()):
        label_of_group.setdefault(int(group), int(label))
        size_of_group[int(group)] += 1
    groups_of_label = defaultdict(list)
    for group, label in label_of_group.items():
        if group not in exclude:
            groups_of_label[label].append(group)
    rng = np.random.default_rng(seed)
    fold_of_group = {g: -1 for g in exclude}
    total = np.zeros(num_folds, dtype=np.int64)
    for label in sorted(groups_of_label):
        groups = sorted(groups_of_label[label])
        groups = [groups[i] for i in rng.permutation(len(groups))]
        per_label = np.zeros(num_folds, dtype=np.int64)
        for group in groups:
            fold = min(range(num_folds), key=lambda k: (per_label[k], total[k], k))
            fold_of_group[group] = fold
            per_label[fold] += size_of_group[group]
            total[fold] += size_of_group[group]
    return np.asarray([fold_of_group[int(g)] for g in group_ids.tolist()], dtype=np.int64)
