"""The full dataset checker behind ``tools/check_dataset.py``: every problem of a dataset, reported at once.

Formats (detected by :func:`check_dataset` from the path):

- a dataset file (``*.json``, :mod:`.wssdl_json`) or a folder of them (a prepared dataset: every split);
- the authors' VOC-style layout (``Annotations/``, ``ImageSets/Main/<split>.txt``, ``TIFFImages/``), every split;
- BUSI's original layout (``benign/``, ``malignant/``, ``normal/`` with ``*_mask*.png``), read by
  :func:`.busi.read_busi`, which already lists every missing / unreadable / wrongly sized mask.

Problems found (``Problem.kind``):

``format``          malformed dataset file or entry (bad JSON / XML, missing keys, bad types, unknown category,
                    an annotation of no image, a file listed in a split but absent)
``record``          what training refuses (the readers' record problems and :func:`.checks.record_problems`):
                    image file missing, unknown supervision or image label, empty box, box outside the image
``corrupt_image``   the image file cannot be decoded (:func:`.image_io.load_image`), or is DICOM, which the
                    training loader cannot read
``size``            the image's real size differs from the width / height the dataset gives
``label``           box class disagrees with the image label, boxes on a normal image, a strong benign /
                    malignant image without a box
``duplicate``       an image id, or an image file, listed twice in one split
``conflicting_labels``   one image (or near-duplicate images) with different image labels
``leak``            the same or near-duplicate images in different roles (train / val / test)

The records and the file-level problems come from the readers themselves (:func:`.wssdl_json.read_wssdl_json`,
:func:`.voc.read_voc_wssdl`, :func:`.busi.read_busi`), whose :class:`~.errors.DatasetProblem` records become
:class:`Problem` entries. Near-duplicates are found by perceptual hash or ORB feature matching
(:func:`.near_duplicates.near_duplicate_groups`, "phash+orb", as when splits are made).
"""
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

from tqdm import tqdm

from .busi import CLASS_FOLDERS, list_class_folder, read_busi
from .checks import label_problems, record_problems  # label_problems: training runs the same checks
from .errors import DatasetError
from .image_io import is_dicom, load_image
from .labels import IMAGE_LABEL_NAMES, IMAGE_LABELS
from .near_duplicates import near_duplicate_groups
from .voc import read_voc_wssdl
from .wssdl_json import read_wssdl_json

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
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> Dict[str, int]:
        """{kind: number of problems}."""
        out = defaultdict(int)
        for problem in self.problems:
            out[problem.kind] += 1
        return dict(out)

    def summary(self) -> str:
        """One line: the dataset, its splits and images, and the problem counts."""
        splits = ", ".join(f"{name} {n}" for name, n in self.splits.items())
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items())) or "no problem found"
        return f"{self.path} ({self.format}; {self.images} images; {splits}): " + (
            found if self.ok else f"{len(self.problems)} problem(s): {found}")

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "splits": self.splits, "images": self.images,
                "counts": self.counts(), "problems": [asdict(p) for p in self.problems]}


def split_role(split: str) -> str:
    """"train", "val" or "test": the role a split plays (leaks are looked for between roles)."""
    name = split.lower()
    if name.startswith(("val", "dev")):
        return "val"
    if name.startswith("test"):
        return "test"
    return "train"


# ---- the readers, collecting every problem ---------------------------------------------------------------

def _is_id(value):
    return isinstance(value, (int, str))


def _from_reader(read, split, problems):
    """Records of ``read()`` (a reader returning ``(records, problems)``); its :class:`.errors.DatasetProblem`
    records, or the problems of the DatasetError it raises, become :class:`Problem` entries of ``split``."""
    try:
        records, found = read()
    except DatasetError as err:
        records, found = [], err.problems
    problems += [Problem(p.path, p.kind, p.message, split) for p in found]
    return records


# ---- checks on records ----------------------------------------------------------------------------------

def _split_problems(split, records):
    problems = [Problem(path, "record", message, split) for path, message in record_problems(records)]
    seen = defaultdict(int)
    for record in records:
        problems += [Problem(record["file_name"], "label", m, split) for m in label_problems(record)]
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
    for path in tqdm(sorted(sizes), desc="decoding images", disable=None if progress else True):
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
    name = IMAGE_LABEL_NAMES[label] if label in IMAGE_LABELS else repr(label)
    return name if split in ("", name) else f"{name} in {split}"


def _group_problems(labels_roles, paths, max_hash_distance, progress):
    """Conflicting labels and leaks between roles, over identical files and near-duplicate groups.

    ``labels_roles``: {path: set of (split, role, image_label)}; ``paths``: the decodable images to hash
    (the others are compared as single files).
    """
    if max_hash_distance is not None and len(paths) > 1:
        groups = near_duplicate_groups(paths, max_hash_distance=max_hash_distance, progress=progress).tolist()
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
        if len({label for _, _, label in entries if label in IMAGE_LABELS}) > 1:
            labels = ", ".join(sorted({_label_in(label, split) for split, _, label in entries}))
            problems.append(Problem(files[0], "conflicting_labels", f"{what} with different image labels ({labels})",
                                    related=files[1:]))
        roles = sorted({role for _, role, _ in entries})
        if len(roles) > 1:
            problems.append(Problem(files[0], "leak", f"{what} in more than one of {'/'.join(roles)} ({splits})",
                                    related=files[1:]))
    return problems


# ---- entry points ---------------------------------------------------------------------------------------

def detect_format(path: str) -> str:
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
    if fmt in ("json", "prepared"):
        files = [path] if fmt == "json" else [
            os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".json") and not f.startswith(".")]
        splits = {os.path.splitext(os.path.basename(f))[0]: f for f in files}
        return {split: _from_reader(lambda f=f: read_wssdl_json(f), split, problems) for split, f in splits.items()}
    folder = os.path.join(path, "ImageSets", "Main")
    splits = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt"))
    if not splits:
        problems.append(Problem(folder, "format", "no split list (<split>.txt)"))
    return {split: _from_reader(lambda s=split: read_voc_wssdl(path, s), split, problems) for split in splits}


def _check_busi(path, report, max_hash_distance, progress):
    try:
        read_busi(path, progress=progress)
    except DatasetError as err:
        report.problems += [Problem(p.path, "format", p.message) for p in err.problems]
    labels_roles = {}
    for folder, label in CLASS_FOLDERS.items():
        if os.path.isdir(os.path.join(path, folder)):
            images = list_class_folder(os.path.join(path, folder))[0]
            report.splits[folder] = len(images)
            for image in images.values():
                labels_roles[image] = {(folder, "train", label)}
    bad = {p.path for p in report.problems}
    paths = sorted(p for p in labels_roles if p not in bad)
    report.images = len(labels_roles)
    report.problems += _group_problems(labels_roles, paths, max_hash_distance, progress)


def check_dataset(path, max_hash_distance: Optional[int] = 6, progress: bool = True) -> CheckReport:
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
