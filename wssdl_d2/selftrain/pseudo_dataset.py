"""Dataset files of a self-training round (or an annotation step): strong + pseudo images, and the weak rest.

Written with the project's writer (:func:`wssdl_d2.data.wssdl_json.write_wssdl_json`, atomically), so they load
and register like any prepared dataset. Every box says where it came from:

- boxes of strong images keep their ``source`` ("mask", "xml", ... or "annotator" for boxes revealed by the
  simulated annotator) and any provenance they already had;
- a pseudo box has ``source: "pseudo"``, ``score`` (the detection's class probability), ``round`` and ``model``
  (the checkpoint that proposed it); its image has ``supervision: "pseudo"`` and ``pseudo_score``,
  ``pseudo_round``, ``pseudo_model``, so pseudo images can be audited (or weighted).

Images are matched by their (absolute) ``file_name``. ``image_root`` of a written file is the deepest folder
holding all its images; file names are stored relative to it.
"""
import csv
import io
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Tuple

from detectron2.structures import BoxMode

from ..data.wssdl_json import ANNOTATION_PROVENANCE, write_wssdl_json
from ..utils.atomic import atomic_open

if TYPE_CHECKING:
    from ..pseudo.selection import Candidate

_RECORD_ONLY_KEYS = ("file_name", "image_id", "annotations", "id")
PSEUDO_CSV_COLUMNS = ("file_name", "image_label", "det_class", "score", "x0", "y0", "x1", "y1", "round", "model")


def _image_root(records):
    folders = [os.path.dirname(os.path.abspath(r["file_name"])) for r in records]
    return os.path.commonpath(folders) if folders else "."


def writer_entry(record: Dict[str, Any], root: str) -> Dict[str, Any]:
    """The :func:`~wssdl_d2.data.wssdl_json.build_wssdl_json` entry of a loaded dataset dict (XYXY_ABS boxes)."""
    entry = {k: v for k, v in record.items() if k not in _RECORD_ONLY_KEYS}
    entry["file_name"] = os.path.relpath(os.path.abspath(record["file_name"]), root)
    anns = [a for a in record.get("annotations") or [] if not a.get("iscrowd", 0)]
    if record.get("supervision") != "weak":
        entry["boxes"] = [list(map(float, a["bbox"])) for a in anns]
        entry["box_info"] = [{k: a[k] for k in ANNOTATION_PROVENANCE if k in a} for a in anns]
    return entry


def pseudo_record(weak_record: Dict[str, Any], candidate: "Candidate", round_index: int,
                  model: str) -> Dict[str, Any]:
    """A copy of ``weak_record`` turned into a pseudo-labelled image: the candidate's top detection as its
    only box (class = the image label, which the detection agrees with), with provenance."""
    score = float(candidate.score)
    return {**weak_record, "supervision": "pseudo", "pseudo_score": score, "pseudo_round": int(round_index),
            "pseudo_model": str(model),
            "annotations": [{"bbox": [float(v) for v in candidate.box], "bbox_mode": BoxMode.XYXY_ABS,
                             "category_id": int(candidate.det_class), "iscrowd": 0, "source": "pseudo",
                             "score": score, "round": int(round_index), "model": str(model)}]}


def revealed_record(weak_record: Dict[str, Any], true_record: Dict[str, Any]) -> Dict[str, Any]:
    """A weak image made strong with the boxes of ``true_record`` (the same image in a fully annotated file),
    each marked ``source: "annotator"`` (the simulated annotator revealed it)."""
    anns = [{**a, "source": "annotator"} for a in true_record.get("annotations") or []]
    return {**weak_record, "supervision": "strong", "annotations": anns}


def split_records(records: Sequence[Dict[str, Any]],
                  selected_keys: Iterable[str]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(records whose file_name is in ``selected_keys``, the others), each in input order."""
    keys = set(selected_keys)
    return [r for r in records if r["file_name"] in keys], [r for r in records if r["file_name"] not in keys]


def write_records(path: str, records: Sequence[Dict[str, Any]], description: str,
                  overwrite: bool = True) -> Dict[str, Any]:
    """Write dataset dicts to a dataset file (atomic). Refuses to replace an existing file unless ``overwrite``."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    root = _image_root(records)
    return write_wssdl_json(path, [writer_entry(r, root) for r in records], root, description)


def write_pseudo_csv(path: str, selected: Iterable["Candidate"], round_index: int, model: str) -> str:
    """``pseudo_labels.csv``: one row per pseudo-labelled image (file, label, class, score, box, round, model)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PSEUDO_CSV_COLUMNS)
    writer.writeheader()
    for c in selected:
        writer.writerow({"file_name": c.key, "image_label": c.image_label, "det_class": c.det_class,
                         "score": f"{c.score:.6f}", **{k: f"{v:.2f}" for k, v in zip(("x0", "y0", "x1", "y1"), c.box)},
                         "round": round_index, "model": model})
    with atomic_open(path, "w", newline="") as f:
        f.write(buffer.getvalue())
    return path
