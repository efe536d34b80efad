"""Reads a dataset in BUSI's original layout into image records with lesion boxes.

Layout: ``<root>/{benign,malignant,normal}/<name>.png`` with ``<name>_mask.png`` and, for further lesions,
``<name>_mask_1.png``, ``<name>_mask_2.png``. Each mask file is one lesion and gives one box
(see :mod:`wssdl_d2.data.masks` for masks of several components). Every problem found is collected and
reported together in one :class:`DatasetError`; a tree without any image, and two images of one name
(``x.png`` beside ``x.jpg``: which one would ``x_mask.png`` belong to?) are problems too.

Images are read by :mod:`.image_io`, the reader training uses, so their size is the size training sees: an
EXIF-rotated JPEG is taken as displayed (rotated), and its masks must be drawn on the displayed image.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from .errors import DatasetError, DatasetProblem
from .image_io import load_image
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
    def category_id(self) -> Optional[int]:
        """COCO category of its boxes: 1 benign, 2 malignant (None for normal)."""
        return self.image_label if self.image_label != NORMAL else None


def list_class_folder(folder: str) -> Tuple[Dict[str, str], Dict[str, List[Tuple[int, str]]], List[DatasetProblem]]:
    """The files of one class folder: ``images`` {stem: path}, ``masks`` {image stem: [(k, path), ...]} (``k`` of
    ``_mask_<k>``, 0 for ``_mask``) and the problems (a mask without its image, two images of one stem: the first
    in sorted order is kept in ``images``)."""
    images, masks, problems = {}, {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stem, ext = os.path.splitext(name)
        if os.path.isdir(path) or ext.lower() not in IMAGE_EXTENSIONS:
            continue
        match = _MASK_RE.match(stem)
        if match:
            masks.setdefault(match["stem"], []).append((int(match["k"] or 0), path))
        elif stem in images:
            problems.append(DatasetProblem(path, f"two images named {stem!r}: {os.path.basename(images[stem])} and "
                                                 f"{name} (keep one, or rename one with its masks)"))
        else:
            images[stem] = path
    for stem, mask_list in masks.items():
        if stem not in images:
            problems.append(DatasetProblem(mask_list[0][1], "mask without an image"))
    return images, masks, problems


def read_busi(root: str, mask_mode: str = "union", min_component_fraction: float = 0.05,
              progress: bool = True, require_masks: bool = True) -> List[ImageRecord]:
    """Read every image of a BUSI-layout tree. Returns a list of :class:`ImageRecord`, sorted by path.

    ``require_masks`` False: an image without mask files is read with no boxes (a scan known by its diagnosis
    only, e.g. a new site's images for adaptation); images that have masks are checked as usual.

    Raises:
        DatasetError: naming every bad file (missing mask, unreadable image, mask of another size, unknown
            class folder, lesion image with an empty mask, normal image with a lesion); its ``problems`` hold
            one :class:`~.errors.DatasetProblem` per file.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise DatasetError(root, "dataset root is not a folder")
    problems = []
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    for d in folders:
        if d not in CLASS_FOLDERS:
            problems.append(DatasetProblem(os.path.join(root, d), f"unknown class folder (expected {sorted(CLASS_FOLDERS)})"))
    if not any(d in CLASS_FOLDERS for d in folders):
        raise DatasetError(root, f"no class folder found (expected {sorted(CLASS_FOLDERS)} inside)")
    jobs = []
    for d in folders:
        if d not in CLASS_FOLDERS:
            continue
        images, masks, folder_problems = list_class_folder(os.path.join(root, d))
        problems += folder_problems
        for stem, path in images.items():
            jobs.append((path, CLASS_FOLDERS[d], sorted(masks.get(stem, []))))
    if not jobs:
        message = (f"no image in the class folders {', '.join(d + '/' for d in folders if d in CLASS_FOLDERS)} "
                   f"(images are {', '.join(IMAGE_EXTENSIONS)} files)")
        raise DatasetError(root, message, problems + [DatasetProblem(root, message)])
    records = []
    for path, label, mask_list in tqdm(jobs, desc=f"reading {os.path.basename(root)}",
                                       disable=None if progress else True):
        try:
            height, width = load_image(path).pixels.shape[:2]
        except DatasetError as err:
            problems.append(DatasetProblem(path, f"cannot read image ({err.problem})"))
            continue
        if not mask_list:
            if require_masks:
                problems.append(DatasetProblem(path, "no mask file (<name>_mask.png) for this image"))
            else:
                records.append(ImageRecord(path, os.path.relpath(path, root), label, width, height, []))
            continue
        boxes = []
        try:
            for _, mask_path in mask_list:
                mask = read_mask(mask_path, expected_hw=(height, width))
                boxes += boxes_from_mask(mask, mask_mode, min_component_fraction).tolist()
        except DatasetError as err:
            problems += err.problems
            continue
        if label == NORMAL and boxes:
            problems.append(DatasetProblem(path, "image in the normal folder but its mask marks a lesion"))
            continue
        if label != NORMAL and not boxes:
            problems.append(DatasetProblem(path, "benign/malignant image whose masks are all empty"))
            continue
        records.append(ImageRecord(path, os.path.relpath(path, root), label, width, height, boxes))
    if problems:
        listing = "\n".join(f"  {p.path}: {p.message}" for p in problems)
        raise DatasetError(root, f"{len(problems)} problem(s) in the dataset:\n{listing}", problems)
    return sorted(records, key=lambda r: r.relpath)
