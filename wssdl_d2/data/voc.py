"""The original authors' VOC-style layout: reader (to Detectron2 dicts) and writer.

Layout: ``Annotations/<id>.xml``, ``ImageSets/Main/<split>.txt`` (one id a line), ``TIFFImages/<id>.tif``.
Each XML has ``<size>``, a diagnosis ``<BIRADS><diag>0|1</diag></BIRADS>`` (0 benign, 1 malignant) and
``<object>``s named ``benign``, ``malignant`` or ``__background__`` with a ``<bndbox>`` in VOC's 1-based
inclusive pixels. ``__background__`` boxes mark regions known to hold no mass: they are not objects and are
kept apart as ``no_mass_regions``. An XML without a diagnosis and without mass objects is a normal image.
Supervision follows the split name unless given: ``s_*`` strong, ``ws_*`` weak, anything else (test) strong.
"""
import math
import os
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils.atomic import atomic_open
from .errors import DatasetError, DatasetProblem
from .labels import IMAGE_LABEL_NAMES, NORMAL, THING_CLASSES, class_to_image_label, image_label_to_class

_OBJECT_NAMES = {**{name: k for k, name in enumerate(THING_CLASSES)}, "__background__": None}


def _number(node, tag, xml_path):
    text = node.findtext(tag)
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(xml_path, f"<{tag}> must be a (finite) number, not {text!r}")
    return value


def read_voc_annotation(xml_path: str) -> dict:
    """Parse one XML. Returns dict with width, height, image_label, boxes [(x0, y0, x1, y1, class 0|1)],
    no_mass_regions [(x0, y0, x1, y1)] in XYXY_ABS pixel edges."""
    try:
        tree = ET.parse(xml_path)
    except FileNotFoundError:
        raise DatasetError(xml_path, "annotation file not found") from None
    except (ET.ParseError, LookupError, UnicodeError) as err:  # LookupError: unknown encoding in the declaration
        raise DatasetError(xml_path, f"malformed XML ({err})") from None
    root = tree.getroot()
    size = root.find("size")
    if size is None:
        raise DatasetError(xml_path, "no <size> element")
    width, height = int(_number(size, "width", xml_path)), int(_number(size, "height", xml_path))
    if width <= 0 or height <= 0:
        raise DatasetError(xml_path, f"bad <size> {width}x{height}")
    boxes, no_mass = [], []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in _OBJECT_NAMES:
            raise DatasetError(xml_path, f"unknown object name {name!r} (expected {sorted(_OBJECT_NAMES)})")
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(xml_path, f"object {name!r} has no <bndbox>")
        x0, y0 = _number(bb, "xmin", xml_path) - 1, _number(bb, "ymin", xml_path) - 1
        x1, y1 = _number(bb, "xmax", xml_path), _number(bb, "ymax", xml_path)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise DatasetError(xml_path, f"box {name} ({x0 + 1}, {y0 + 1}, {x1}, {y1}) is empty or outside the {width}x{height} image")
        if _OBJECT_NAMES[name] is None:
            no_mass.append((x0, y0, x1, y1))
        else:
            boxes.append((x0, y0, x1, y1, _OBJECT_NAMES[name]))
    diag = root.findtext("BIRADS/diag")
    if diag is not None:
        if diag.strip() not in ("0", "1"):
            raise DatasetError(xml_path, f"<BIRADS><diag> must be 0 (benign) or 1 (malignant), not {diag!r}")
        image_label = class_to_image_label(int(diag))
    elif boxes:
        raise DatasetError(xml_path, "mass objects but no <BIRADS><diag> diagnosis")
    else:
        image_label = NORMAL
    if any(class_to_image_label(cls) != image_label for *_, cls in boxes):
        raise DatasetError(xml_path, f"object class disagrees with the diagnosis {IMAGE_LABEL_NAMES[image_label]}")
    return {"width": width, "height": height, "image_label": image_label, "boxes": boxes, "no_mass_regions": no_mass}


def read_voc_wssdl(root: str, split: str, supervision: Optional[str] = None, image_folder: str = "TIFFImages",
                   image_ext: str = ".tif") -> Tuple[List[dict], List[DatasetProblem]]:
    """Read one split of a VOC-style tree, collecting every problem instead of stopping at the first.

    Returns ``(records, problems)``: the dicts of the images whose XML is valid and whose image file exists (see
    :func:`load_voc_wssdl`), and one :class:`DatasetProblem` per bad XML (``path`` the XML file) or missing
    image (``path`` the image). Raises DatasetError when the split list itself cannot be read.
    """
    list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    try:
        with open(list_file) as f:
            ids = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise DatasetError(list_file, "split list not found") from None
    except UnicodeDecodeError as err:
        raise DatasetError(list_file, f"split list is not text ({err})") from None
    if any("\0" in image_id for image_id in ids):
        raise DatasetError(list_file, "an image id contains a NUL character")
    if supervision is None:
        supervision = "weak" if split.startswith("ws_") else "strong"
    records, problems = [], []
    for image_id in ids:
        try:
            ann = read_voc_annotation(os.path.join(root, "Annotations", image_id + ".xml"))
        except DatasetError as err:
            problems += err.problems
            continue
        image_path = os.path.join(root, image_folder, image_id + image_ext)
        if not os.path.exists(image_path):
            problems.append(DatasetProblem(image_path, f"image listed in {list_file} not found", "record"))
            continue
        annotations = [] if supervision == "weak" else [
            {"bbox": [x0, y0, x1, y1], "bbox_mode": BoxMode.XYXY_ABS, "category_id": cls, "iscrowd": 0, "source": "xml"}
            for x0, y0, x1, y1, cls in ann["boxes"]
        ]
        records.append({"file_name": image_path, "image_id": image_id, "width": ann["width"], "height": ann["height"],
                        "supervision": supervision, "image_label": ann["image_label"], "annotations": annotations,
                        "no_mass_regions": [list(b) for b in ann["no_mass_regions"]]})
    return records, problems


def load_voc_wssdl(root: str, split: str, supervision: Optional[str] = None, image_folder: str = "TIFFImages",
                   image_ext: str = ".tif") -> List[dict]:
    """Detectron2 dicts (with ``supervision``, ``image_label``, ``no_mass_regions``; boxes XYXY_ABS) of one
    split. Raises DatasetError naming the first bad file; its ``problems`` list them all (:func:`read_voc_wssdl`)."""
    records, problems = read_voc_wssdl(root, split, supervision, image_folder, image_ext)
    if problems:
        raise DatasetError(problems[0].path, problems[0].message, problems)
    return records


def register_voc_wssdl(name: str, root: str, split: str, supervision: Optional[str] = None) -> None:
    """Register one split of a VOC-style tree under ``name``."""
    DatasetCatalog.register(name, lambda: load_voc_wssdl(root, split, supervision))
    MetadataCatalog.get(name).set(thing_classes=list(THING_CLASSES), image_label_names=list(IMAGE_LABEL_NAMES),
                                  evaluator_type="wssdl", dirname=root, split=split)


def write_voc_annotation(xml_path: str, image_id: str, width: int, height: int, image_label: int,
                         boxes: Sequence[Sequence[float]], no_mass_regions: Sequence[Sequence[float]] = ()) -> None:
    """Write one XML in the authors' format. ``boxes``: XYXY_ABS pixel edges; class from ``image_label``."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = image_id + ".tif"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 1)):
        ET.SubElement(size, tag).text = str(int(value))
    if image_label != NORMAL:
        ET.SubElement(ET.SubElement(root, "BIRADS"), "diag").text = str(image_label_to_class(image_label))
    named = [(IMAGE_LABEL_NAMES[image_label], b) for b in boxes] + [("__background__", b) for b in no_mass_regions]
    for name, (x0, y0, x1, y1) in named:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        bb = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bb, tag).text = str(int(round(value)))
    with atomic_open(xml_path, "wb") as f:
        ET.ElementTree(root).write(f)
