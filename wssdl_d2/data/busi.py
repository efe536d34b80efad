"""Reads a dataset in BUSI's original layout into image records with lesion boxes.

Layout: ``<root>/{benign,malignant,normal}/<name>.png`` with ``<name>_mask.png`` and, for further lesions,
``<name>_mask_1.png``, ``<name>_mask_2.png``. Each mask file is one lesion and gives one box
(see :mod:`wssdl_d2.data.masks` for masks of several components). Every problem found is collected and
reported together in one :class:`DatasetError`.
"""
import os
import re
from dataclasses import dataclass, field

import cv2
from tqdm import tqdm

from .errors import DatasetError
from .labels import IMAGE_LABEL_NAMES, NORMAL
from .masks import boxes_from_mask, read_mask

#: BUSI's folders: one per image label, named after it.
CLASS_FOLDERS = {name: label for label, name in enumerate(IMAGE_LABEL_NAMES)}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_MASK_RE = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<k>\d+))?$")


@dataclass
class ImageRecord:
    """One image of a labelled pool. Boxes are XYXY_ABS pixel edges, one per lesion."""

    path: str  # absolute path of the image
    relpath: str  # path relative to the dataset root (used in the JSON files)
    image_label: int  # 0 normal, 1 benign, 2 malignant
    width: int
    height: int
    boxes: list = field(default_factory=list)  # [[x0, y0, x1, y1], ...]

    @property
    def category_id(self):
        """COCO category of its boxes: 1 benign, 2 malignant (None for normal)."""
        return self.image_label if self.image_label != NORMAL else None


def _list_folder(folder):
    images, masks, problems = {}, {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stem, ext = os.path.splitext(name)
        if os.path.isdir(path) or ext.lower() not in IMAGE_EXTENSIONS:
            continue
        match = _MASK_RE.match(stem)
        if match:
            masks.setdefault(match["stem"], []).append((int(match["k"] or 0), path))
        else:
            images[stem] = path
    for stem, mask_list in masks.items():
        if stem not in images:
            problems.append((mask_list[0][1], "mask without an image"))
    return images, masks, problems


def read_busi(root, mask_mode="union", min_component_fraction=0.05, progress=True):
    """Read every image of a BUSI-layout tree. Returns a list of :class:`ImageRecord`, sorted by path.

    Raises:
        DatasetError: naming every bad file (missing mask, unreadable image, mask of another size, unknown
            class folder, lesion image with an empty mask, normal image with a lesion).
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise DatasetError(root, "dataset root is not a folder")
    problems = []
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    for d in folders:
        if d not in CLASS_FOLDERS:
            problems.append((os.path.join(root, d), f"unknown class folder (expected {sorted(CLASS_FOLDERS)})"))
    if not any(d in CLASS_FOLDERS for d in folders):
        raise DatasetError(root, f"no class folder found (expected {sorted(CLASS_FOLDERS)} inside)")
    jobs = []
    for d in folders:
        if d not in CLASS_FOLDERS:
            continue
        images, masks, folder_problems = _list_folder(os.path.join(root, d))
        problems += folder_problems
        for stem, path in images.items():
            jobs.append((path, CLASS_FOLDERS[d], sorted(masks.get(stem, []))))
    records = []
    for path, label, mask_list in tqdm(jobs, desc=f"reading {os.path.basename(root)}", disable=not progress):
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            problems.append((path, "cannot read image (corrupt or not an image)"))
            continue
        if not mask_list:
            problems.append((path, "no mask file (<name>_mask.png) for this image"))
            continue
        height, width = image.shape[:2]
        boxes = []
        try:
            for _, mask_path in mask_list:
                mask = read_mask(mask_path, expected_hw=(height, width))
                boxes += boxes_from_mask(mask, mask_mode, min_component_fraction).tolist()
        except DatasetError as err:
            problems.append((err.path, err.problem))
            continue
        if label == 0 and boxes:
            problems.append((path, "image in the normal folder but its mask marks a lesion"))
            continue
        if label > 0 and not boxes:
            problems.append((path, "benign/malignant image whose masks are all empty"))
            continue
        records.append(ImageRecord(path, os.path.relpath(path, root), label, width, height, boxes))
    if problems:
        listing = "\n".join(f"  {p}: {msg}" for p, msg in problems)
        raise DatasetError(root, f"{len(problems)} problem(s) in the dataset:\n{listing}")
    return sorted(records, key=lambda r: r.relpath)
