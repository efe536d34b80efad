"""The full dataset checker behind ``tools/check_dataset.py``: every problem of a dataset, reported at once.

Formats (detected by :func:`check_dataset` from the path):

- a dataset file (``*.json``, :mod:`.wssdl_json`) or a folder of them (a prepared dataset: every split);
- the authors' VOC-style layout (``Annotations/``, ``ImageSets/Main/<split>.txt``, ``TIFFImages/``), every split;
- BUSI's original layout (``benign/``, ``malignant/``, ``normal/`` with ``*_mask*.png``), read by
  :func:`.busi.read_busi`, which already lists every missing / unreadable / wrongly sized mask.

Problems found (``Problem.kind``):

``format``          malformed dataset file or entry (bad JSON / XML, missing keys, bad types, unknown category,
                    an annotation of no image, a file listed in a split but absent)
``record``          the training-time checks of :func:`.checks.record_problems`: image file missing, unknown
                    supervision or image label, empty box, box outside the image
``corrupt_image``   the image file cannot be decoded (:func:`.image_io.load_image`), or is DICOM, which the
                    training loader cannot read
``size``            the image's real size differs from the width / height the dataset gives
``label``           box class disagrees with the image label, boxes on a normal image, a strong benign /
                    malignant image without a box
``duplicate``       an image id, or an image file, listed twice in one split
``conflicting_labels``   one image (or near-duplicate images) with different image labels
``leak``            the same or near-duplicate images in different roles (train / val / test)

Near-duplicates are found by perceptual hash (:mod:`.near_duplicates`, as when splits are made).
"""
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from .busi import CLASS_FOLDERS, _list_folder, read_busi
from .checks import record_problems
from .errors import DatasetError
from .image_io import is_dicom, load_image
from .near_duplicates import group_near_duplicates, perceptual_hashes
from .voc import read_voc_annotation
from .wssdl_json import IMAGE_LABEL_NAMES, THING_CLASSES, _read_json, resolve_image_root

PROBLEM_KINDS = ("format", "record", "corrupt_image", "size", "label", "duplicate", "conflicting_labels", "leak")


@dataclass
class Problem:
    """One problem: ``path`` the file it is in (image, mask, XML or dataset file), ``split`` the split (or
    "" for the whole dataset), ``kind`` one of ``PROBLEM_KINDS``, ``message`` what is wrong, ``related`` the
    other files involved (near-duplicates)."""

    path: str
    kind: str
    message: str
    split: str = ""
    related: list = field(default_factory=list)  # the other files of a conflict / leak

    def __str__(self):
        related = f" [{', '.join(self.related)}]" if self.related else ""
        return f"{'[' + self.split + '] ' if self.split else ''}{self.path}: {self.message}{related}"


@dataclass
class CheckReport:
    """``format`` of the dataset, ``splits`` {split: number of images}, ``images`` distinct image files,
    ``problems`` every :class:`Problem` found."""

    path: str
    format: str
    splits: dict = field(default_factory=dict)
    images: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def counts(self):
        """{kind: number of problems}."""
        out = defaultdict(int)
        for problem in self.problems:
            out[problem.kind] += 1
        return dict(out)

    def summary(self):
        """One line: the dataset, its splits and images, and the problem counts."""
        splits = ", ".join(f"{name} {n}" for name, n in self.splits.items())
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items())) or "no problem found"
        return f"{self.path} ({self.format}; {self.images} images; {splits}): " + (
            found if self.ok else f"{len(self.problems)} problem(s): {found}")

    def to_dict(self):
        return {"path": self.path, "format": self.format, "splits": self.splits, "images": self.images,
                "counts": self.counts(), "problems": [asdict(p) for p in self.problems]}


def split_role(split):
    """"train", "val" or "test": the role a split plays (leaks are looked for between roles)."""
    name = split.lower()
    if name.startswith(("val", "dev")):
        return "val"
    if name.startswith("test"):
        return "test"
    return "train"


# ---- readers that collect problems instead of stopping at the first -------------------------------------

def _is_id(value):
    return isinstance(value, (int, str))


def _is_coordinate(value):
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _json_records(json_file, split, problems):
    """Records (Detectron2-style dicts, boxes XYXY_ABS) of a dataset file; malformed entries become problems."""
    def bad(message, kind="format"):
        problems.append(Problem(json_file, kind, message, split))

    try:
        data = _read_json(json_file)
        root = resolve_image_root(json_file)
    except DatasetError as err:
        bad(err.problem)
        return []
    cat_map = {}
    for k, category in enumerate(data.get("categories") or []):
        name = category.get("name") if isinstance(category, dict) else None
        if name in THING_CLASSES and _is_id(category.get("id")):
            cat_map[category.get("id")] = THING_CLASSES.index(name)
        else:
            bad(f"categories[{k}]: unknown category {category!r}; expected names {THING_CLASSES}")
    records = {}
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= image.keys():
            bad(f"images[{k}] needs id, file_name, width and height")
            continue
        if not isinstance(image["file_name"], str) or not image["file_name"] or not _is_id(image["id"]):
            bad(f"images[{k}]: file_name {image['file_name']!r} or id {image['id']!r} is not valid")
            continue
        if image["id"] in records:
            bad(f"images[{k}] ({image['file_name']}): image id {image['id']!r} used twice", "duplicate")
            continue
        width, height = image["width"], image["height"]
        if not (type(width) is int and type(height) is int and width > 0 and height > 0):
            bad(f"images[{k}] ({image['file_name']}): bad size {width!r} x {height!r}")
            continue
        records[image["id"]] = {"file_name": os.path.join(root, image["file_name"]), "image_id": image["id"],
                                "width": width, "height": height, "supervision": image.get("supervision"),
                                "image_label": image.get("image_label"), "annotations": []}
    for k, ann in enumerate(data.get("annotations") or []):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not _is_id(image_id) or image_id not in records:
            bad(f"annotations[{k}]: image_id {image_id!r} is not a (valid) image of this file")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_coordinate(v) for v in bbox)):
            bad(f"annotations[{k}]: bbox must be [x, y, w, h] numbers, not {bbox!r}")
        elif not _is_id(ann.get("category_id")) or ann["category_id"] not in cat_map:
            bad(f"annotations[{k}]: unknown category_id {ann.get('category_id')!r}")
        elif records[image_id]["supervision"] != "weak":  # the loader ignores boxes of weak images
            x, y, w, h = bbox
            records[image_id]["annotations"].append({"bbox": [x, y, x + w, y + h],
                                                     "category_id": cat_map[ann["category_id"]]})
    return list(records.values())


def _voc_records(root, split, problems, image_folder="TIFFImages", image_ext=".tif"):
    """Records of one split of a VOC-style tree; bad XML files become problems."""
    list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    with open(list_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    supervision = "weak" if split.startswith("ws_") else "strong"
    records = []
    for image_id in ids:
        try:
            ann = read_voc_annotation(os.path.join(root, "Annotations", image_id + ".xml"))
        except DatasetError as err:
            problems.append(Problem(err.path, "format", err.problem, split))
            continue
        boxes = [] if supervision == "weak" else [{"bbox": list(b[:4]), "category_id": b[4]} for b in ann["boxes"]]
        records.append({"file_name": os.path.join(root, image_folder, image_id + image_ext), "image_id": image_id,
                        "width": ann["width"], "height": ann["height"], "supervision": supervision,
                        "image_label": ann["image_label"], "annotations": boxes})
    return records


# ---- checks on records ----------------------------------------------------------------------------------

def _label_problems(record):
    label, boxes = record.get("image_label"), record["annotations"]
    if label not in (0, 1, 2):
        return []  # reported by record_problems
    if label == 0 and boxes:
        return [f"normal image with {len(boxes)} box(es)"]
    out = [f"box of class {THING_CLASSES[a['category_id']]} on a {THING_CLASSES[label - 1]} image"
           for a in boxes if a["category_id"] != label - 1]
    if label > 0 and not boxes and record.get("supervision") in ("strong", "pseudo"):
        out.append(f"{record['supervision']} {THING_CLASSES[label - 1]} image without a box")
    return out


def _split_problems(split, records):
    problems = [Problem(path, "record", message, split) for path, message in record_problems(records)]
    seen = defaultdict(int)
    for record in records:
        problems += [Problem(record["file_name"], "label", m, split) for m in _label_problems(record)]
        seen[record["file_name"]] += 1
    problems += [Problem(path, "duplicate", f"listed {n} times in this split", split)
                 for path, n in seen.items() if n > 1]
    return problems


def _image_problems(records_by_split, progress):
    """Decode every distinct image once: corrupt files, DICOM, and sizes that disagree with the dataset."""
    sizes = defaultdict(set)
    for split, records in records_by_split.items():
        for r in records:
            sizes[r["file_name"]].add((split, r["height"], r["width"]))
    problems, readable = [], []
    for path in tqdm(sorted(sizes), desc="decoding images", disable=not progress):
        if not os.path.isfile(path):
            continue  # reported by record_problems
        if is_dicom(path):
            problems.append(Problem(path, "corrupt_image", "DICOM image: the training loader reads PNG / JPEG / "
                                    "TIFF only (convert it)"))
            continue
        try:
            height, width = load_image(path).pixels.shape[:2]
        except DatasetError as err:
            problems.append(Problem(path, "corrupt_image", err.problem))
            continue
        readable.append(path)
        for split, h, w in sorted(sizes[path]):
            if (h, w) != (height, width):
                problems.append(Problem(path, "size", f"image is {width}x{height} but the dataset says {w}x{h}",
                                        split))
    return problems, readable


def _label_in(label, split):
    name = IMAGE_LABEL_NAMES[label] if label in (0, 1, 2) else repr(label)
    return name if split in ("", name) else f"{name} in {split}"


def _group_problems(labels_roles, paths, max_hash_distance, progress):
    """Conflicting labels and leaks between roles, over identical files and near-duplicate groups.

    ``labels_roles``: {path: set of (split, role, image_label)}; ``paths``: the decodable images to hash
    (the others are compared as single files).
    """
    if max_hash_distance is not None and len(paths) > 1:
        groups = group_near_duplicates(perceptual_hashes(paths, progress), max_hash_distance).tolist()
    else:
        groups = list(range(len(paths)))
    members = defaultdict(list)
    for path, group in zip(paths, groups):
        members[group].append(path)
    for k, path in enumerate(sorted(set(labels_roles) - set(paths))):
        members[-k - 1].append(path)
    problems = []
    for files in members.values():
        entries = [(split, role, label) for p in files for split, role, label in labels_roles[p]]
        what = "image" if len(files) == 1 else f"image and {len(files) - 1} near-duplicate(s)"
        splits = ", ".join(sorted({split for split, _, _ in entries}))
        if len({label for _, _, label in entries if label in (0, 1, 2)}) > 1:
            labels = ", ".join(sorted({_label_in(label, split) for split, _, label in entries}))
            problems.append(Problem(files[0], "conflicting_labels", f"{what} with different image labels ({labels})",
                                    related=files[1:]))
        roles = sorted({role for _, role, _ in entries})
        if len(roles) > 1:
            problems.append(Problem(files[0], "leak", f"{what} in more than one of {'/'.join(roles)} ({splits})",
                                    related=files[1:]))
    return problems


# ---- entry points ---------------------------------------------------------------------------------------

def detect_format(path):
    """"json" (a dataset file), "prepared" (a folder of them), "voc" or "busi"; raises DatasetError."""
    if os.path.isfile(path):
        return "json"
    if not os.path.isdir(path):
        raise DatasetError(path, "no such file or folder")
    if os.path.isdir(os.path.join(path, "Annotations")) and os.path.isdir(os.path.join(path, "ImageSets", "Main")):
        return "voc"
    if any(os.path.isdir(os.path.join(path, d)) for d in CLASS_FOLDERS):
        return "busi"
    if any(f.endswith(".json") and not f.startswith(".") for f in os.listdir(path)):
        return "prepared"
    raise DatasetError(path, "not a dataset: no *.json file, no VOC layout (Annotations/, ImageSets/Main/) "
                             f"and no BUSI layout ({', '.join(CLASS_FOLDERS)} folders)")


def _records_by_split(path, fmt, problems):
    if fmt == "json":
        split = os.path.splitext(os.path.basename(path))[0]
        return {split: _json_records(path, split, problems)}
    if fmt == "prepared":
        files = sorted(f for f in os.listdir(path) if f.endswith(".json") and not f.startswith("."))
        return {f[:-5]: _json_records(os.path.join(path, f), f[:-5], problems) for f in files}
    folder = os.path.join(path, "ImageSets", "Main")
    splits = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt"))
    if not splits:
        problems.append(Problem(folder, "format", "no split list (<split>.txt)"))
    return {split: _voc_records(path, split, problems) for split in splits}


def _check_busi(path, report, max_hash_distance, progress):
    try:
        read_busi(path, progress=progress)
    except DatasetError as err:
        # read_busi lists one "<file>: <problem>" per line after a heading; other errors concern the root
        lines = [line.strip() for line in err.problem.splitlines()[1:] if line.strip()]
        for line in lines or [f"{err.path}: {err.problem}"]:
            file, _, message = line.partition(": ")
            report.problems.append(Problem(file, "format", message))
    labels_roles = {}
    for folder, label in CLASS_FOLDERS.items():
        if os.path.isdir(os.path.join(path, folder)):
            images = _list_folder(os.path.join(path, folder))[0]
            report.splits[folder] = len(images)
            for image in images.values():
                labels_roles[image] = {(folder, "train", label)}
    bad = {p.path for p in report.problems}
    paths = sorted(p for p in labels_roles if p not in bad)
    report.images = len(labels_roles)
    report.problems += _group_problems(labels_roles, paths, max_hash_distance, progress)


def check_dataset(path, max_hash_distance=6, progress=True):
    """Check the dataset at ``path`` (see the module docstring); returns a :class:`CheckReport`.

    ``max_hash_distance``: perceptual-hash Hamming distance (of 64 bits) up to which two images are
    near-duplicates; None skips the near-duplicate search (identical files are still compared).
    """
    path = os.fspath(path)
    report = CheckReport(path, detect_format(path))
    if report.format == "busi":
        _check_busi(path, report, max_hash_distance, progress)
        return report
    records_by_split = _records_by_split(path, report.format, report.problems)
    labels_roles = defaultdict(set)
    for split, records in records_by_split.items():
        report.splits[split] = len(records)
        report.problems += _split_problems(split, records)
        for r in records:
            label = r.get("image_label")
            labels_roles[r["file_name"]].add((split, split_role(split), label if _is_id(label) else repr(label)))
    image_problems, readable = _image_problems(records_by_split, progress)
    report.problems += image_problems
    report.images = len(labels_roles)
    report.problems += _group_problems(labels_roles, readable, max_hash_distance, progress)
    return report
