"""Cheap checks run on the training data before a run starts (before iteration 0): they refuse bad data with the
file's name. The same record and label checks as ``tools/check_dataset.py`` (:mod:`.dataset_check`), without
decoding or hashing images."""
import os
from typing import Iterable, List, Sequence, Tuple

from .errors import DatasetError
from .labels import IMAGE_LABELS, NORMAL, SUPERVISIONS, THING_CLASSES, image_label_to_class


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


def label_problems(record: dict) -> List[str]:
    """What is contradictory between a record's boxes and its image label (``tools/check_dataset.py``'s ``label``
    problems): boxes on a normal image, a box whose class is not the one the image label implies (e.g. dataset
    category ids counted from 0 turn every benign box malignant), a strong / pseudo mass image without a box."""
    label, boxes = record.get("image_label"), record.get("annotations") or []
    if label not in IMAGE_LABELS:
        return []  # reported by record_problems
    if label == NORMAL and boxes:
        return [f"normal image with {len(boxes)} box(es)"]
    target = image_label_to_class(label)
    out = [f"box of class {THING_CLASSES[a['category_id']] if a.get('category_id') in (0, 1) else a.get('category_id')}"
           f" on a {THING_CLASSES[target]} image" for a in boxes if a.get("category_id") != target]
    if label != NORMAL and not boxes and record.get("supervision") in ("strong", "pseudo"):
        out.append(f"{record['supervision']} {THING_CLASSES[target]} image without a box")
    return out


def training_problems(dicts: Iterable[dict]) -> List[Tuple[str, str]]:
    """(file, problem) of everything training refuses before iteration 0: :func:`record_problems`, an empty
    (0-byte) image file, and the :func:`label_problems` of each record. Cheap: no image is decoded or hashed."""
    dicts = list(dicts)
    problems = record_problems(dicts)
    for d in dicts:
        path = d.get("file_name", "?")
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            problems.append((path, "image file is empty (0 bytes)"))
        problems += [(path, message) for message in label_problems(d)]
    return problems


def check_dataset_dicts(dicts: Iterable[dict], dataset_name: str = "dataset") -> None:
    """Raise DatasetError (naming ``dataset_name``, e.g. the dataset file) listing every problem
    :func:`training_problems` finds (the first 50 of them); box classes that contradict the image labels come with
    a hint on category ids."""
    problems = training_problems(dicts)
    if problems:
        listing = "\n".join(f"  {p}: {m}" for p, m in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        hint = ""
        if any(m.startswith("box of class") for _, m in problems):
            hint = ("\n  (a box's category_id in a dataset file is the image label its class implies: 1 benign, "
                    "2 malignant; ids counted from 0 shift every class)")
        raise DatasetError(dataset_name, f"{len(problems)} problem(s) in the training data (tools/check_dataset.py "
                                         f"reports them all):\n{listing}{more}{hint}")


def checked_training_dicts(names: Sequence[str], check: bool = True) -> List[dict]:
    """The records of the registered datasets ``names`` (DATASETS.TRAIN), concatenated. With ``check``
    (WSSDL.CHECK_DATA) each dataset is first checked (:func:`check_dataset_dicts`, named by its file when it has
    one), so every trainer refuses bad training data the same way before iteration 0."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    dicts = []
    for name in names:
        records = DatasetCatalog.get(name)
        if check:
            source = MetadataCatalog.get(name).get("json_file", None)
            check_dataset_dicts(records, f"{name} ({source})" if source else name)
        dicts += records
    return dicts
