"""Turns a labelled image pool (BUSI layout) into the project's dataset files.

Writes into ``out``:

- ``train_strong_<P>.json`` / ``train_weak_<P>.json`` for each strong fraction P% of the train images
  (nested for one seed; with ``strong_labels`` only images of those labels keep their boxes, every other image
  of the fraction is weak), ``train_strong_n<N>.json`` / ``train_weak_n<N>.json`` for each strong count N
  (N images with boxes keep them, nested), ``train_all.json`` (every train image with its boxes), ``val.json``,
  ``test.json`` (when a test fraction is asked, or every image with ``test_all``: a new site's evaluation set);
- ``meta/``: one file list per split and subset, ``groups.csv`` (image, label, near-duplicate group, split)
  and ``report.json`` (counts, conflicting-label groups, parameters).

All files are written atomically.
"""
import csv
import io
import os
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from ..utils.atomic import atomic_open, atomic_write_json
from .busi import read_busi
from .folds import write_folds
from .labels import IMAGE_LABEL_NAMES, NORMAL
from .near_duplicates import (DEFAULT_DUPLICATE_METHOD, duplicate_parameters, merge_confirmed_pairs,
                              near_duplicate_groups, read_confirmed_pairs)
from .splits import conflicting_groups, split_by_groups, strong_subset, strong_subset_count
from .wssdl_json import write_wssdl_json


def _entry(record, supervision):
    if supervision == "strong" and not record.boxes and record.image_label != NORMAL:
        supervision = "weak"  # a mass image read without masks (require_masks False): its label is all we know
    return {"file_name": record.relpath, "width": record.width, "height": record.height,
            "supervision": supervision, "image_label": record.image_label,
            "boxes": record.boxes if supervision != "weak" else []}


def _write_lines(path, lines):
    with atomic_open(path) as f:
        f.writelines(line + "\n" for line in lines)


def prepare_pool(root: str, out: str, strong_fractions: Sequence[float] = (0.2,), val_fraction: float = 0.2,
                 test_fraction: float = 0.0, seed: int = 0, max_hash_distance: int = 6, keep_conflicting: bool = False,
                 name: str = "dataset", progress: bool = True, log: Callable[[str], Any] = print,
                 strong_labels: Sequence[str] = IMAGE_LABEL_NAMES, folds: int = 0,
                 overwrite: bool = False, strong_counts: Sequence[int] = (), test_all: bool = False,
                 require_masks: bool = True, duplicates: str = DEFAULT_DUPLICATE_METHOD,
                 same_lesion: Optional[str] = None) -> Dict[str, Any]:
    """Read the BUSI-layout tree ``root`` and write the dataset files into ``out``. Returns the report dict.

    ``strong_labels``: the image labels (names of ``IMAGE_LABEL_NAMES``) whose images may keep their boxes in the
    strong subsets; e.g. ``("normal", "benign")`` makes a split where malignant masses are known only from the
    image label (the quickstart's demonstration). Default: every label.

    ``folds``: K >= 2 also writes K cross-validation folds of the train + val images (test and conflicting-label
    groups left out) into ``out/fold<k>/`` (:func:`wssdl_d2.data.folds.write_folds`; ``overwrite`` lets it
    remove stale folds of an earlier preparation with more folds).

    ``strong_counts``: numbers N of images with boxes that keep them in the train split and in each fold's training
    part (``train_strong_n<N>`` / ``train_weak_n<N>``; N = 0 writes every training image as weak).

    ``test_all``: every image (conflicting-label groups excluded unless ``keep_conflicting``) goes to ``test.json``
    with its boxes, and no flat train / val split is written (``val_fraction`` and ``test_fraction`` must be 0):
    an external site's evaluation set. Folds, when asked, are drawn from the same images.

    ``require_masks`` False: images without mask files are read with no boxes (:func:`~.busi.read_busi`); they can
    be weak images only.

    ``duplicates``: how near-duplicates are found (:func:`~.near_duplicates.near_duplicate_groups`): "phash+orb"
    (perceptual hash or ORB feature matching, the default) or "phash"; recorded in the report.

    ``same_lesion``: a CSV of pairs a person confirmed as the same lesion (``file_a``, ``file_b``, ``same_lesion``;
    :func:`~.near_duplicates.read_confirmed_pairs`): each pair with 1 joins one group whatever the detector found,
    e.g. BUSI's labelled sample ``benchmarks/near_duplicates/labelled_pairs.csv``."""
    unknown = sorted(set(strong_labels) - set(IMAGE_LABEL_NAMES))
    if unknown:
        raise ValueError(f"strong_labels {unknown}: not image labels (choose from {IMAGE_LABEL_NAMES})")
    allowed = [IMAGE_LABEL_NAMES.index(n) for n in strong_labels]
    if test_all and (val_fraction or test_fraction):
        raise ValueError(f"test_all puts every image in test.json: val_fraction ({val_fraction}) and test_fraction "
                         f"({test_fraction}) must be 0")
    records = read_busi(root, progress=progress, require_masks=require_masks)
    labels = np.array([r.image_label for r in records])
    groups = near_duplicate_groups([r.path for r in records], duplicates, max_hash_distance, progress=progress)
    confirmed = np.zeros((0, 2), np.int64)
    if same_lesion:  # pairs a person confirmed as one lesion join one group, whatever the detector said
        confirmed = read_confirmed_pairs(same_lesion, [r.relpath for r in records])
        groups = merge_confirmed_pairs(groups, confirmed)
    conflicts = sorted(conflicting_groups(labels, groups))
    splits = split_by_groups(labels, groups, val_fraction, test_fraction, seed,
                             exclude=() if keep_conflicting else conflicts)
    splits = np.array(splits)
    if test_all:
        splits[splits == "train"] = "test"
    image_root = os.path.abspath(root)
    if image_root.startswith(os.path.abspath(out) + os.sep):  # images inside out: keep the folder relocatable
        image_root = os.path.relpath(image_root, os.path.abspath(out))
    meta = os.path.join(out, "meta")
    os.makedirs(meta, exist_ok=True)

    def subset(mask):
        return [r for r, keep in zip(records, mask) if keep]

    written = {}
    for split in ("val", "test"):
        chosen = subset(splits == split)
        if chosen:
            write_wssdl_json(os.path.join(out, f"{split}.json"), [_entry(r, "strong") for r in chosen], image_root,
                             f"{name} {split} split, seed {seed}")
            written[split] = len(chosen)
        _write_lines(os.path.join(meta, f"{split}.txt"), [r.relpath for r in chosen])
    train = subset(splits == "train")
    _write_lines(os.path.join(meta, "excluded.txt"), [r.relpath for r in subset(splits == "excluded")])
    if not test_all:
        write_wssdl_json(os.path.join(out, "train_all.json"), [_entry(r, "strong") for r in train], image_root,
                         f"{name} train split, every image with boxes, seed {seed}")
        written["train_all"] = len(train)
        _write_lines(os.path.join(meta, "train.txt"), [r.relpath for r in train])
        train_labels = np.array([r.image_label for r in train])
        is_allowed = np.isin(train_labels, allowed)
        has_boxes = np.array([len(r.boxes) > 0 for r in train], dtype=bool) & is_allowed
        subsets = [(str(int(round(100 * f))), f"{int(round(100 * f))}% strong",
                    strong_subset(train_labels, f, seed) & is_allowed) for f in strong_fractions]
        subsets += [(f"n{int(n)}", f"{int(n)} images with boxes", strong_subset_count(train_labels, has_boxes, n, seed))
                    for n in strong_counts]
        for suffix, title, strong in subsets:
            entries = [_entry(r, "strong" if s else "weak") for r, s in zip(train, strong)]
            for supervision in ("strong", "weak"):
                chosen = [e for e in entries if e["supervision"] == supervision]
                if chosen:
                    write_wssdl_json(os.path.join(out, f"train_{supervision}_{suffix}.json"), chosen, image_root,
                                     f"{name} train split, {title}, {supervision} part, seed {seed}")
                    written[f"train_{supervision}_{suffix}"] = len(chosen)
                    if supervision == "strong":
                        written[f"train_strong_{suffix}_with_box"] = sum(bool(e["boxes"]) for e in chosen)
                        written[f"train_strong_{suffix}_normal"] = sum(e["image_label"] == NORMAL for e in chosen)
            _write_lines(os.path.join(meta, f"strong_{suffix}.txt"), [r.relpath for r, s in zip(train, strong) if s])
    fold_summary = None
    if folds:
        # a held-out test split stays out of the folds; with test_all the folds are drawn from the test images
        held_out = ("excluded",) if test_all else ("test", "excluded")
        fold_exclude = {int(g) for g, s in zip(groups, splits) if s in held_out}
        fold_summary = write_folds(out, records, groups, folds, strong_fractions, seed, allowed, image_root, name,
                                   _entry, exclude=fold_exclude, overwrite=overwrite, strong_counts=strong_counts)
        written.update({f"{f}/{k}": n for f, c in fold_summary["images"].items() for k, n in c.items()})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file_name", "image_label", "group", "split"])
    for r, g, s in zip(records, groups, splits):
        writer.writerow([r.relpath, IMAGE_LABEL_NAMES[r.image_label], int(g), s])
    with atomic_open(os.path.join(meta, "groups.csv")) as f:
        f.write(buffer.getvalue())
    report = {
        "root": os.path.abspath(root), "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
        "strong_fractions": list(strong_fractions), "strong_counts": [int(n) for n in strong_counts],
        "test_all": bool(test_all), "strong_labels": list(strong_labels),
        "max_hash_distance": max_hash_distance,
        "near_duplicates": dict(duplicate_parameters(duplicates, max_hash_distance),
                                same_lesion_file=os.path.abspath(same_lesion) if same_lesion else None,
                                same_lesion_pairs=int(len(confirmed))),
        "images": len(records), "groups": int(groups.max() + 1) if len(groups) else 0,
        "conflicting_groups": [[r.relpath for r, g in zip(records, groups) if g == c] for c in conflicts],
        "conflicting_excluded": not keep_conflicting,
        "split_images": {s: int((splits == s).sum()) for s in ("train", "val", "test", "excluded")},
        "files": written, "folds": fold_summary,
    }
    atomic_write_json(os.path.join(meta, "report.json"), report, indent=1)
    log(f"[{name}] {len(records)} images in {report['groups']} near-duplicate groups; "
        f"{len(conflicts)} conflicting-label group(s) {'excluded' if not keep_conflicting else 'kept'}")
    for key, count in written.items():
        if key.endswith(("_with_box", "_normal")):
            continue
        if f"{key}_with_box" in written:  # a strong subset: images with a box and normal images (none) told apart
            log(f"[{name}]   {key}.json: {count} images ({written[key + '_with_box']} with a box, "
                f"{written[key + '_normal']} normal)")
        else:
            log(f"[{name}]   {key}.json: {count} images")
    return report
