"""Cheap checks run on the training data before a run starts: they refuse bad data with the file's name."""
import os
from typing import Iterable, List, Tuple

from .errors import DatasetError
from .labels import IMAGE_LABELS, SUPERVISIONS


def record_problems(dicts: Iterable[dict]) -> List[Tuple[str, str]]:
    """(file, problem) for every record whose image is missing, whose supervision / image_label is unknown, or
    whose boxes (XYXY_ABS) are empty or outside the image. The full checker (:mod:`.dataset_check`) builds on it."""
    problems = []
    for d in dicts:
        path = d.get("file_name", "?")
        if not os.path.isfile(path):
            problems.append((path, "image file not found"))
        if d.get("supervision") not in SUPERVISIONS:
            problems.append((path, f"supervision {d.get('supervision')!r} is not one of {SUPERVISIONS}"))
        if d.get("image_label") not in IMAGE_LABELS:
            problems.append((path, f"image_label {d.get('image_label')!r} is not 0, 1 or 2"))
        w, h = d.get("width", 0), d.get("height", 0)
        for ann in d.get("annotations", []):
            x0, y0, x1, y1 = ann["bbox"]  # XYXY_ABS after loading
            if x1 <= x0 or y1 <= y0:
                problems.append((path, f"empty box {ann['bbox']}"))
            elif x0 < -1 or y0 < -1 or x1 > w + 1 or y1 > h + 1:
                problems.append((path, f"box {ann['bbox']} outside the {w}x{h} image"))
    return problems


def check_dataset_dicts(dicts: Iterable[dict], dataset_name: str = "dataset") -> None:
    """Raise DatasetError listing every problem :func:`record_problems` finds (the first 50 of them)."""
    problems = record_problems(dicts)
    if problems:
        listing = "\n".join(f"  {p}: {m}" for p, m in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DatasetError(dataset_name, f"{len(problems)} problem(s) in the training data:\n{listing}{more}")
