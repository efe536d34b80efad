"""Expands the demo's ``--input`` arguments (files, folders, glob patterns) into a list of image files."""
import glob
import os
import re
from typing import Iterable, List

from ..data.image_io import SUPPORTED_EXTENSIONS, is_dicom


_MASK_RE = re.compile(r"_mask(_\d+)?$")  # BUSI's lesion masks: <name>_mask.png, <name>_mask_1.png


def _is_image(path):
    """An image file that is not a BUSI-style lesion mask."""
    stem, ext = os.path.splitext(os.path.basename(path))
    if _MASK_RE.search(stem):
        return False
    return ext.lower() in SUPPORTED_EXTENSIONS or is_dicom(path)


def _folder_images(folder):
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, f) for f in sorted(files) if not f.startswith(".")
                  and _is_image(os.path.join(parent, f))]
    return found


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Image files named by ``inputs``, in order, without repeats.

    A file is taken as it is (whatever its extension: reading it tells whether it is an image); a folder gives
    every image below it (PNG / JPEG / TIFF / BMP / DICOM by extension, and DICOM files without one by their
    marker), sorted, leaving out BUSI-style lesion masks (``*_mask.png``, ``*_mask_1.png``); anything else
    is a glob pattern (``**`` allowed) whose matches are taken like that.
    Raises FileNotFoundError naming the inputs that match nothing.
    """
    files, unmatched = [], []
    for item in inputs:
        if os.path.isfile(item):
            found = [item]
        elif os.path.isdir(item):
            found = _folder_images(item)
        else:
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                if os.path.isdir(match):
                    found += _folder_images(match)
                elif _is_image(match):
                    found.append(match)
        if not found:
            unmatched.append(item)
        files += found
    if unmatched:
        raise FileNotFoundError("no image found for input(s): " + ", ".join(repr(u) for u in unmatched))
    return list(dict.fromkeys(os.path.normpath(f) for f in files))
