"""The project's dataset file: COCO JSON whose images carry ``supervision`` and ``image_label``.

Format (a superset of COCO detection JSON, readable by pycocotools)::

    {"info": {"image_root": "<folder, absolute or relative to this file>", ...},
     "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}],
     "images": [{"id", "file_name" (relative to image_root), "width", "height",
                 "supervision": "strong" | "weak" | "pseudo", "image_label": 0 | 1 | 2, ...}],
     "annotations": [{"id", "image_id", "bbox": [x, y, w, h], "category_id", "area", "iscrowd": 0,
                      "source": "mask" | "xml" | "pseudo" | ..., pseudo boxes also "score", "round", "model"}]}

Weak images have no annotations. :func:`load_wssdl_json` turns the file into Detectron2 dataset dicts
(``bbox_mode`` XYXY_ABS, contiguous ``category_id`` 0 benign / 1 malignant) and validates it.
"""
import json
import math
import os
from typing import Iterable, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils.atomic import atomic_write_json
from .errors import DatasetError, DatasetProblem
from .labels import IMAGE_LABEL_NAMES, IMAGE_LABELS, SUPERVISIONS, THING_CLASSES, class_to_image_label

#: COCO categories of a dataset file: id = the image label a box of the class implies (1 benign, 2 malignant).
CATEGORIES = [{"id": class_to_image_label(k), "name": name} for k, name in enumerate(THING_CLASSES)]
# Annotation keys kept by load_wssdl_json beside the box: where it came from ("mask", "xml", "pseudo", "annotator"),
# and for pseudo boxes the detection score, the self-training round and the model that proposed it.
ANNOTATION_PROVENANCE = ("source", "score", "round", "model")


def build_wssdl_json(images: Iterable[dict], image_root: str, description: str = "") -> dict:
    """A dataset file as a dict.

    Args:
        images: iterable of dicts with ``file_name`` (relative to image_root), ``width``, ``height``,
            ``supervision``, ``image_label``, optionally ``boxes`` (list of XYXY_ABS) with ``box_source``,
            ``box_scores``, ``box_info`` (one dict per box of extra annotation keys, e.g. the provenance
            ``{"source": "pseudo", "score", "round", "model"}`` of self-training) and any extra
            JSON-serialisable keys (kept on the image entry).
        image_root: folder the file names are relative to (stored in ``info``).
    """
    out_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        entry = {k: v for k, v in image.items() if k not in ("boxes", "box_source", "box_scores", "box_info")}
        entry["id"] = image_id
        out_images.append(entry)
        if image["supervision"] == "weak":
            continue
        scores = image.get("box_scores") or [None] * len(image.get("boxes", []))
        infos = image.get("box_info") or [{}] * len(image.get("boxes", []))
        for (x0, y0, x1, y1), score, info in zip(image.get("boxes", []), scores, infos):
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(image["image_label"]),
                   "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                   "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0, "source": image.get("box_source", "mask")}
            if score is not None:
                ann["score"] = float(score)
            ann.update(info)
            annotations.append(ann)
    return {"info": {"description": description, "image_root": image_root,
                     "image_label_names": IMAGE_LABEL_NAMES, "format": "wssdl_d2 COCO v1"},
            "categories": CATEGORIES, "images": out_images, "annotations": annotations}


def write_wssdl_json(path: str, images: Iterable[dict], image_root: str, description: str = "") -> dict:
    """Build (see :func:`build_wssdl_json`) and write a dataset file atomically. Returns the dict written."""
    data = build_wssdl_json(images, image_root, description)
    atomic_write_json(path, data)
    return data


def _read_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(path, "dataset file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(path, "not a COCO-style dataset file (no 'images' list)")
    for key, kind in (("info", dict), ("categories", list), ("annotations", list)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise DatasetError(path, f"'{key}' must be a {kind.__name__}, not {type(data[key]).__name__}")
    return data


def resolve_image_root(json_file: str, image_root: Optional[str] = None) -> str:
    """The folder image file names are relative to: ``image_root`` if given, else the file's
    ``info.image_root`` (relative paths are taken from the JSON file's folder), else that folder."""
    if image_root:
        return image_root
    data_root = (_read_json(json_file).get("info") or {}).get("image_root") or "."
    if not isinstance(data_root, str):
        raise DatasetError(json_file, f"info.image_root must be a folder name, not {data_root!r}")
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(json_file)), data_root))


def read_wssdl_json(json_file: str, image_root: Optional[str] = None,
                    default_supervision: Optional[str] = None) -> Tuple[List[dict], List[DatasetProblem]]:
    """Read a dataset file into Detectron2 dicts, collecting every problem instead of stopping at the first.

    Returns ``(records, problems)``: the dicts of the valid entries (see :func:`load_wssdl_json`; an invalid image
    entry is left out with its boxes, an invalid annotation is left out) and one :class:`DatasetProblem` per
    malformed entry, in file order (``path`` the dataset file, ``message`` naming the entry). Raises
    DatasetError only when the file as a whole cannot be read (missing, not JSON, no ``images`` list).
    """
    data = _read_json(json_file)
    root = resolve_image_root(json_file, image_root)
    problems = []

    def bad(message, kind="format"):
        problems.append(DatasetProblem(json_file, message, kind))

    categories = {c.get("id"): c.get("name") for c in data.get("categories") or []
                  if isinstance(c, dict) and isinstance(c.get("id"), (int, str))}
    cat_map = {}
    for cid, name in categories.items():
        if name not in THING_CLASSES:
            bad(f"unknown category {name!r} (id {cid}); expected {THING_CLASSES}")
            continue
        cat_map[cid] = THING_CLASSES.index(name)
    records, seen = {}, set()
    for k, image in enumerate(data["images"]):
        where = f"images[{k}]"
        if (not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= image.keys()
                or not isinstance(image["id"], (int, str)) or not isinstance(image["file_name"], str)):
            bad(f"{where} needs id (int or str), file_name (str), width and height")
            continue
        if image["id"] in seen:
            bad(f"{where}: duplicate image id {image['id']!r}", "duplicate")
            continue
        seen.add(image["id"])
        supervision, label = image.get("supervision", default_supervision), image.get("image_label")
        if supervision not in SUPERVISIONS:
            bad(f"{where} ({image['file_name']}): supervision {supervision!r} is not one of {SUPERVISIONS}", "record")
        if label not in IMAGE_LABELS:
            bad(f"{where} ({image['file_name']}): image_label {label!r} is not 0, 1 or 2", "record")
        if supervision not in SUPERVISIONS or label not in IMAGE_LABELS:
            continue
        width, height = image["width"], image["height"]
        if not (type(width) is int and type(height) is int and width > 0 and height > 0):
            bad(f"{where} ({image['file_name']}): bad size {width!r} x {height!r}")
            continue
        record = {key: value for key, value in image.items() if key not in ("id", "file_name")}
        record.update(file_name=os.path.join(root, image["file_name"]), image_id=image["id"],
                      supervision=supervision, annotations=[])
        records[image["id"]] = record
    for k, ann in enumerate(data.get("annotations") or []):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), (int, str)) or ann["image_id"] not in records:
            bad(f"{where}: image_id {ann.get('image_id') if isinstance(ann, dict) else ann!r} is not a (valid) image of this file")
            continue
        record = records[ann["image_id"]]
        if not isinstance(ann.get("category_id"), (int, str)) or ann["category_id"] not in cat_map:
            bad(f"{where}: unknown category_id {ann.get('category_id')!r}")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(type(v) is int or (type(v) is float and math.isfinite(v)) for v in bbox)):
            bad(f"{where}: bbox must be [x, y, w, h] numbers, not {bbox!r}")
            continue
        x, y, w, h = bbox
        if not (x + w > x and y + h > y):  # also an extent lost in float rounding (w = 1e-300)
            bad(f"{where}: empty box {bbox} in {os.path.basename(record['file_name'])}", "record")
            continue
        if x < -1 or y < -1 or x + w > record["width"] + 1 or y + h > record["height"] + 1:
            bad(f"{where}: box {bbox} lies outside the {record['width']}x{record['height']} image "
                f"{os.path.basename(record['file_name'])}", "record")
            continue
        if record["supervision"] == "weak":
            continue  # weak images keep their image label only
        if ann.get("iscrowd", 0) not in (0, 1):
            bad(f"{where}: iscrowd must be 0 or 1, not {ann.get('iscrowd')!r}")
            continue
        out = {"bbox": [x, y, x + w, y + h], "bbox_mode": BoxMode.XYXY_ABS, "category_id": cat_map[ann["category_id"]],
               "iscrowd": int(ann.get("iscrowd", 0))}
        for key in ANNOTATION_PROVENANCE:
            if key in ann:
                out[key] = ann[key]
        record["annotations"].append(out)
    return list(records.values()), problems


def load_wssdl_json(json_file: str, image_root: Optional[str] = None,
                    default_supervision: Optional[str] = None) -> List[dict]:
    """Read a dataset file into Detectron2 dicts (with ``supervision`` and ``image_label``; boxes XYXY_ABS,
    ``category_id`` 0 benign / 1 malignant).

    ``default_supervision`` fills images that carry no ``supervision`` (plain COCO files): without it they are
    an error. Raises DatasetError naming the file and the first malformed entry; its ``problems`` list them all
    (:func:`read_wssdl_json`).
    """
    records, problems = read_wssdl_json(json_file, image_root, default_supervision)
    if problems:
        raise DatasetError(json_file, problems[0].message, problems)
    return records


def register_wssdl_json(name: str, json_file: str, image_root: Optional[str] = None) -> None:
    """Register a dataset file under ``name`` in Detectron2's DatasetCatalog and MetadataCatalog."""
    json_file = os.path.abspath(json_file)
    DatasetCatalog.register(name, lambda: load_wssdl_json(json_file, image_root))
    MetadataCatalog.get(name).set(
        thing_classes=list(THING_CLASSES), image_label_names=list(IMAGE_LABEL_NAMES), json_file=json_file,
        thing_dataset_id_to_contiguous_id={c["id"]: k for k, c in enumerate(CATEGORIES)}, evaluator_type="wssdl",
    )


def register_datasets_under(root: Optional[str]) -> List[str]:
    """Register every ``<root>/<name>/<split>.json`` as ``<name>_<split>``; names already registered are left
    alone. Returns the names registered now. A missing root registers nothing."""
    names = []
    if not root or not os.path.isdir(root):
        return names
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for file in sorted(os.listdir(folder)):
            if not file.endswith(".json") or file.startswith("."):
                continue
            dataset = f"{name}_{file[:-5]}"
            if dataset not in DatasetCatalog.list():
                register_wssdl_json(dataset, os.path.join(folder, file))
                names.append(dataset)
    return names


def default_dataset_root() -> str:
    """$WSSDL_DATASETS if set, else ./datasets."""
    return os.environ.get("WSSDL_DATASETS", "datasets")
