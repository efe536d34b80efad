"""An earlier preparation in an output folder: find its files, and remove those a new preparation did not rewrite.

``tools/prepare_busi.py`` refuses an ``--out`` that holds an earlier preparation unless ``--overwrite`` is given;
with it, the new preparation is written first and only then are the earlier preparation's leftovers (e.g. the
``train_strong_10.json`` of fractions no longer asked for, which would still be registered) removed. A file counts
as the preparation's own only when it is one the preparation writes:

- dataset files (``*.json`` in ``<out>/`` and ``<out>/fold<k>/``) that carry the ``info.format`` written by
  :func:`~.wssdl_json.build_wssdl_json`;
- in ``<out>/meta/``: ``report.json``, ``groups.csv``, ``folds.csv``, ``train.txt``, ``val.txt``, ``test.txt``,
  ``excluded.txt`` and ``strong_*.txt``; in ``<out>/fold<k>/meta/``: ``strong_*.txt`` and ``inner_strong_*.txt``.

Any other file (the images when they live in ``<out>/images``, notes, a user's own JSON) is never touched.
"""
import csv
import json
import os
import re
from typing import Dict, List, Tuple

from .folds import FOLD_DIR_RE

DATASET_FORMAT = "wssdl_d2 COCO v1"
_META_FILES = ("report.json", "groups.csv", "folds.csv", "train.txt", "val.txt", "test.txt", "excluded.txt")
_STRONG_LIST_RE = re.compile(r"^(inner_)?strong_[A-Za-z0-9_]+\.txt$")


def _is_dataset_file(path):
    try:
        with open(path) as f:
            info = json.load(f).get("info") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(info, dict) and info.get("format") == DATASET_FORMAT


def _files(folder):
    try:
        return sorted(os.path.join(folder, n) for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))
    except OSError:
        return []


def preparation_files(out: str) -> List[str]:
    """The files of an earlier preparation in ``out`` (see the module docstring); [] when there is none."""
    found = []
    fold_dirs = [os.path.join(out, d) for d in sorted(os.listdir(out)) if FOLD_DIR_RE.match(d)] if os.path.isdir(out) else []
    for folder in [out] + fold_dirs:
        found += [p for p in _files(folder) if p.endswith(".json") and _is_dataset_file(p)]
    found += [p for p in _files(os.path.join(out, "meta"))
              if os.path.basename(p) in _META_FILES or _STRONG_LIST_RE.match(os.path.basename(p))]
    for folder in fold_dirs:
        found += [p for p in _files(os.path.join(folder, "meta")) if _STRONG_LIST_RE.match(os.path.basename(p))]
    return found


def _file_id(path) -> Tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def snapshot(out: str) -> Dict[str, Tuple[int, int]]:
    """{path: (device, inode)} of the earlier preparation's files in ``out``, to tell later which were rewritten
    (the preparation writes atomically: a rewritten file is a new inode)."""
    return {p: _file_id(p) for p in preparation_files(out)}


def remove_leftovers(out: str, before: Dict[str, Tuple[int, int]]) -> List[str]:
    """Remove the files of ``before`` (:func:`snapshot`) that the new preparation did not rewrite, then the
    ``meta/`` and ``fold<k>/`` folders left empty. Returns the files removed."""
    removed = []
    for path, ident in before.items():
        try:
            if _file_id(path) == ident:
                os.remove(path)
                removed.append(path)
        except FileNotFoundError:
            continue
    folds = [os.path.join(out, d) for d in os.listdir(out) if FOLD_DIR_RE.match(d)] if os.path.isdir(out) else []
    for folder in [os.path.join(f, "meta") for f in folds] + folds + [os.path.join(out, "meta")]:
        try:
            os.rmdir(folder)  # only when empty
        except OSError:
            pass
    return removed


class GroupsFileError(ValueError):
    """A preparation's ``meta/groups.csv`` is missing or malformed; the message names the file and the row."""


def read_near_duplicate_groups(prepared_root: str) -> Dict[str, int]:
    """The near-duplicate group of every image of a preparation, from ``<prepared_root>/meta/groups.csv``.

    Returns {image path relative to the image root (e.g. ``"benign/benign (10).png"``): group id}. Images of one
    group show the same lesion (crops, adjacent frames), so an analysis over images resamples groups, not images.
    Raises GroupsFileError naming the file when it is missing or a row lacks a file name or an integer group.
    """
    path = os.path.join(prepared_root, "meta", "groups.csv")
    if not os.path.isfile(path):
        raise GroupsFileError(f"{path}: no near-duplicate groups file; prepare the dataset with "
                              "tools/prepare_busi.py (it writes meta/groups.csv)")
    groups = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file_name", "group"} <= set(reader.fieldnames):
            raise GroupsFileError(f"{path}: needs the columns file_name and group, found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                groups[row["file_name"]] = int(row["group"])
            except (TypeError, ValueError):
                raise GroupsFileError(f"{path}, line {line}: group {row.get('group')!r} of "
                                      f"{row.get('file_name')!r} is not an integer") from None
    return groups
