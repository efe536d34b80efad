"""K-fold cross-validation datasets: their layout on disk, their names, writing and registering them.

Layout (written by :func:`write_folds`, called from :func:`wssdl_d2.data.prepare.prepare_pool` with ``folds=K``)::

    <out>/fold<k>/val.json                 the held-out fold k (every image with its boxes)
    <out>/fold<k>/train_all.json           the other K - 1 folds, every image with its boxes
    <out>/fold<k>/train_strong_<P>.json    P% of train_all keeps its boxes (nested: 10% inside 20% per fold)
    <out>/fold<k>/train_weak_<P>.json      the rest of train_all with image labels only
    <out>/fold<k>/train_strong_n<N>.json   with strong counts: N images with boxes of train_all keep them (nested)
    <out>/fold<k>/train_weak_n<N>.json     the rest of train_all with image labels only (n0: all of it)
    <out>/fold<k>/meta/strong_<P>.txt      the file names of each strong subset (strong_n<N>.txt for counts)
    <out>/fold<k>/inner_val.json           the inner validation split: 20% of the training part's near-duplicate
                                           groups (per label, seeded), for choosing settings and checkpoints
    <out>/fold<k>/inner_train_all.json     the rest of the training part; inner_train_strong_<P> /
                                           inner_train_weak_<P> (and _n<N>) are the strong subsets restricted to it
    <out>/meta/folds.csv                   file_name, image_label, group, fold (-1: excluded)

Settings (schedule, input size, thresholds, checkpoints) are chosen on a fold's ``inner_val`` after training on its
``inner_train_*`` part, never on the held-out ``val``: the held-out fold is used once, to report. The strong subsets
count every image of a label alike: P% of the training part's benign and of its malignant images keep their boxes,
and P% of its normal images are strong too (known to hold no mass, so they teach the detector background). The
summary counts the two apart ("with a box" and "normal").

Registered (:func:`register_fold_datasets_under`) like the flat splits, as ``<name>_fold<k>_<split>``, e.g.
``busi_fold3_train_strong_20`` and ``busi_fold3_val``.
"""
import csv
import io
import os
import re
import shutil
from typing import Callable, Dict, List, Sequence

import numpy as np
from detectron2.data import DatasetCatalog

from ..utils.atomic import atomic_open
from .labels import NORMAL
from .splits import assign_folds, split_by_groups, strong_subset, strong_subset_count
from .wssdl_json import register_wssdl_json, write_wssdl_json

FOLD_DIR_RE = re.compile(r"^fold(\d+)$")
#: Share of a fold's training part (near-duplicate groups, per label) held out as its inner validation split.
INNER_VAL_FRACTION = 0.2


def fold_dir(out: str, fold: int) -> str:
    """``<out>/fold<k>``."""
    return os.path.join(out, f"fold{int(fold)}")


def fold_dataset_name(name: str, fold: int, split: str) -> str:
    """The registered name of a fold's split: ``busi``, 3, ``train_strong_20`` -> ``busi_fold3_train_strong_20``."""
    return f"{name}_fold{int(fold)}_{split}"


def existing_folds(out: str) -> List[int]:
    """Sorted fold indices k with a ``<out>/fold<k>/`` folder."""
    if not os.path.isdir(out):
        return []
    return sorted(int(m.group(1)) for m in map(FOLD_DIR_RE.match, os.listdir(out))
                  if m and os.path.isdir(os.path.join(out, m.group(0))))


def _relative_root(image_root: str, folder: str, out: str) -> str:
    """``image_root`` as written in a file of ``folder``: absolute roots stay, a root relative to ``out`` is made
    relative to ``folder`` (so a prepared folder stays relocatable)."""
    if os.path.isabs(image_root):
        return image_root
    return os.path.relpath(os.path.join(out, image_root), folder)


def write_folds(out: str, records: Sequence, groups: np.ndarray, num_folds: int, strong_fractions: Sequence[float],
                seed: int, strong_allowed: Sequence[int], image_root: str, name: str,
                entry: Callable, exclude=(), overwrite: bool = False, strong_counts: Sequence[int] = ()) -> Dict:
    """Write the K folds of ``records`` (see the module docstring). Returns a summary for the report.

    Args:
        records: the pool's image records (``image_label``, ``relpath``, ...), N of them.
        groups: (N,) near-duplicate group of each record; a group never straddles folds.
        num_folds: K >= 2.
        strong_fractions: fractions of each fold's training part that keep their boxes (nested for one seed).
        strong_allowed: image labels whose images may keep their boxes (others of the fraction are weak).
        image_root: the images' folder, absolute or relative to ``out``.
        entry: ``entry(record, supervision)`` -> the dataset file's image dict.
        exclude: group ids left out of every fold (conflicting labels).
        overwrite: remove ``fold<j>`` folders of an earlier preparation with more folds (j >= K); without it
            they are refused, since they would be registered beside the new folds.
        strong_counts: numbers of images with boxes of each fold's training part that keep them
            (:func:`~wssdl_d2.data.splits.strong_subset_count`, nested for one seed; 0: every image weak).
    Raises:
        FileExistsError: stale fold folders, naming them, unless ``overwrite``.
    """
    stale = [fold_dir(out, j) for j in existing_folds(out) if j >= num_folds]
    if stale and not overwrite:
        raise FileExistsError(f"{out} holds folds of an earlier preparation with more folds ({', '.join(stale)}); "
                              f"pass --overwrite to remove them, or choose another --out")
    for folder in stale:
        shutil.rmtree(folder)
    labels = np.asarray([r.image_label for r in records])
    folds = assign_folds(labels, groups, num_folds, seed, exclude=exclude)
    summary = {"num_folds": int(num_folds), "seed": int(seed), "images": {}}
    for k in range(num_folds):
        folder = fold_dir(out, k)
        os.makedirs(os.path.join(folder, "meta"), exist_ok=True)
        root = _relative_root(image_root, folder, out)
        val = [r for r, f in zip(records, folds) if f == k]
        train_index = [i for i, f in enumerate(folds) if f >= 0 and f != k]
        train = [records[i] for i in train_index]
        counts = {"val": len(val), "train_all": len(train)}
        write_wssdl_json(os.path.join(folder, "val.json"), [entry(r, "strong") for r in val], root,
                         f"{name} fold {k} of {num_folds}: held-out images, seed {seed}")
        write_wssdl_json(os.path.join(folder, "train_all.json"), [entry(r, "strong") for r in train], root,
                         f"{name} fold {k} of {num_folds}: training images with boxes, seed {seed}")
        _write_strong_subsets(folder, "", train, strong_fractions, seed, strong_allowed, strong_counts, root,
                              f"{name} fold {k} of {num_folds}", entry, counts)
        # the inner split of the training part: settings are chosen here, never on the held-out fold
        train_labels = [r.image_label for r in train]
        inner = split_by_groups(train_labels, np.asarray(groups)[train_index], INNER_VAL_FRACTION, seed=seed + 1 + k)
        inner_val = [r for r, s in zip(train, inner) if s == "val"]
        inner_train = [r for r, s in zip(train, inner) if s == "train"]
        title = f"{name} fold {k} of {num_folds}, inner split"
        write_wssdl_json(os.path.join(folder, "inner_val.json"), [entry(r, "strong") for r in inner_val], root,
                         f"{title}: validation images for choosing settings, seed {seed}")
        write_wssdl_json(os.path.join(folder, "inner_train_all.json"), [entry(r, "strong") for r in inner_train],
                         root, f"{title}: training images with boxes, seed {seed}")
        counts.update(inner_val=len(inner_val), inner_train_all=len(inner_train))
        _write_strong_subsets(folder, "inner_", inner_train, strong_fractions, seed, strong_allowed, strong_counts,
                              root, title, entry, counts)
        summary["images"][f"fold{k}"] = counts
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file_name", "image_label", "group", "fold"])
    for r, g, f in zip(records, groups, folds):
        writer.writerow([r.relpath, int(r.image_label), int(g), int(f)])
    os.makedirs(os.path.join(out, "meta"), exist_ok=True)
    with atomic_open(os.path.join(out, "meta", "folds.csv")) as f:
        f.write(buffer.getvalue())
    return summary


def _write_strong_subsets(folder: str, prefix: str, train: Sequence, strong_fractions: Sequence[float], seed: int,
                          strong_allowed: Sequence[int], strong_counts: Sequence[int], root: str, title: str,
                          entry: Callable, counts: Dict) -> None:
    """Write ``<folder>/<prefix>train_{strong,weak}_<P>.json`` (and ``_n<N>``) over the records ``train`` and their
    file lists ``<folder>/meta/<prefix>strong_<P>.txt``; add to ``counts`` each file's image count and, for each
    strong subset, ``<file>_with_box`` (images with a box) and ``<file>_normal`` (normal images, no box)."""
    labels = np.asarray([r.image_label for r in train])
    allowed = np.isin(labels, list(strong_allowed))
    subsets = [(str(int(round(100 * fraction))), f"{int(round(100 * fraction))}% strong",
                strong_subset(labels, fraction, seed) & allowed) for fraction in strong_fractions]
    has_boxes = np.asarray([len(r.boxes) > 0 for r in train], dtype=bool) & allowed
    subsets += [(f"n{int(n)}", f"{int(n)} images with boxes", strong_subset_count(labels, has_boxes, n, seed))
                for n in strong_counts]
    for suffix, what, strong in subsets:
        for supervision, mask in (("strong", strong), ("weak", ~strong)):
            chosen = [entry(r, supervision) for r, keep in zip(train, mask) if keep]
            if chosen:
                stem = f"{prefix}train_{supervision}_{suffix}"
                write_wssdl_json(os.path.join(folder, f"{stem}.json"), chosen, root,
                                 f"{title}: {what}, {supervision} part, seed {seed}")
                counts[stem] = len(chosen)
                if supervision == "strong":
                    counts[f"{stem}_with_box"] = sum(bool(e["boxes"]) for e in chosen)
                    counts[f"{stem}_normal"] = sum(e["image_label"] == NORMAL for e in chosen)
        with atomic_open(os.path.join(folder, "meta", f"{prefix}strong_{suffix}.txt")) as f:
            f.writelines(r.relpath + "\n" for r, s in zip(train, strong) if s)


def register_fold_datasets_under(root: str) -> List[str]:
    """Register every ``<root>/<name>/fold<k>/<split>.json`` as ``<name>_fold<k>_<split>`` (names already
    registered are left alone). Returns the names registered now; a missing root registers nothing."""
    names = []
    if not root or not os.path.isdir(root):
        return names
    for name in sorted(os.listdir(root)):
        for k in existing_folds(os.path.join(root, name)):
            folder = fold_dir(os.path.join(root, name), k)
            for file in sorted(os.listdir(folder)):
                if not file.endswith(".json") or file.startswith("."):
                    continue
                dataset = fold_dataset_name(name, k, file[:-5])
                if dataset not in DatasetCatalog.list():
                    register_wssdl_json(dataset, os.path.join(folder, file))
                    names.append(dataset)
    return names


def read_folds_csv(path: str) -> Dict[str, tuple]:
    """``<out>/meta/folds.csv`` (written by :func:`write_folds`) as file_name (relative to the image root) ->
    (image_label, group, fold) ints (fold -1: excluded). ValueError naming the file for a missing column or a
    bad value; FileNotFoundError when it does not exist."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("file_name", "image_label", "group", "fold") if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: not a folds table, missing columns {missing}")
            table = {}
            for line, row in enumerate(reader, start=2):
                try:
                    table[row["file_name"]] = (int(row["image_label"]), int(row["group"]), int(row["fold"]))
                except (TypeError, ValueError):
                    raise ValueError(f"{path} line {line}: image_label, group and fold must be integers") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: folds table not found (tools/prepare_busi.py --folds K writes "
                                "<out>/meta/folds.csv)") from None
    return table
