"""The demo's result files: ``predictions.json`` (everything) and ``predictions.csv`` (one row per image).

JSON: ``{"images": [record, ...], "errors": [{"file", "error"}], ...run information}`` where a record is
``{"file", "frame", "num_frames", "width", "height", "diagnosis" (the one stated answer,
:func:`~.diagnosis.stated_diagnosis`: from the calibrated probability when there is a calibration),
"diagnosis_basis" (why, with the threshold), "probability" (the detection rule's confidence), "scores": {normal, benign,
malignant}, "malignancy_score" (uncalibrated: the top malignant detection's score, 0 without one),
"p_malignant_calibrated" (the calibrated probability of malignancy, null without a calibration), "detections": [{"box": [x0, y0, x1, y1], "class", "class_name", "score"}], "visualization"}``
(boxes in the original image's pixels, detections with score >= the demo's threshold).
Both files are written atomically.
"""
import csv
import io
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from ..data.labels import IMAGE_LABEL_NAMES, THING_CLASSES
from ..utils.atomic import atomic_open, atomic_write_json
from .diagnosis import stated_diagnosis

if TYPE_CHECKING:
    from ..data.image_io import LoadedImage
    from .predictor import Prediction

CSV_COLUMNS = ("file", "frame", "width", "height", "diagnosis", "probability", "score_normal", "score_benign",
               "score_malignant", "malignancy_score", "p_malignant_calibrated", "num_detections", "top_box", "top_class", "top_score", "visualization")


def prediction_record(file: Union[str, os.PathLike], loaded: "LoadedImage", prediction: "Prediction", threshold: float,
                      visualization: Optional[str] = None) -> Dict[str, Any]:
    """The JSON record of one image (see the module docstring). ``loaded``: its
    :class:`~wssdl_d2.data.image_io.LoadedImage`."""
    detections = [{"box": [round(float(v), 2) for v in prediction.boxes[i]], "class": int(prediction.classes[i]),
                   "class_name": THING_CLASSES[int(prediction.classes[i])],
                   "score": round(float(prediction.scores[i]), 4)} for i in prediction.above(threshold)]
    diagnosis = prediction.diagnosis
    name, basis = stated_diagnosis(diagnosis)
    return {"file": os.fspath(file), "frame": loaded.frame, "num_frames": loaded.num_frames,
            "width": prediction.width, "height": prediction.height, "diagnosis": name, "diagnosis_basis": basis,
            "probability": round(float(diagnosis.probability), 4),
            "scores": {name: round(float(diagnosis.scores[name]), 4) for name in IMAGE_LABEL_NAMES},
            "malignancy_score": round(float(diagnosis.scores["malignant"]), 4),
            "p_malignant_calibrated": None if diagnosis.p_malignant is None else round(float(diagnosis.p_malignant), 4),
            "detections": detections, "visualization": visualization}


def _csv_row(record):
    top = record["detections"][0] if record["detections"] else None
    return {"file": record["file"], "frame": record["frame"], "width": record["width"], "height": record["height"],
            "diagnosis": record["diagnosis"], "probability": record["probability"],
            **{f"score_{name}": record["scores"][name] for name in IMAGE_LABEL_NAMES},
            "malignancy_score": record["malignancy_score"],
            "p_malignant_calibrated": "" if record["p_malignant_calibrated"] is None else record["p_malignant_calibrated"],
            "num_detections": len(record["detections"]),
            "top_box": " ".join(str(v) for v in top["box"]) if top else "",
            "top_class": top["class_name"] if top else "", "top_score": top["score"] if top else "",
            "visualization": record["visualization"] or ""}


def write_predictions(output_dir: str, records: Sequence[Dict[str, Any]], errors: Iterable[Dict[str, str]] = (),
                      info: Optional[Mapping[str, Any]] = None) -> Tuple[str, str]:
    """Write ``predictions.json`` and ``predictions.csv`` into ``output_dir``. Returns their two paths."""
    json_path = os.path.join(output_dir, "predictions.json")
    csv_path = os.path.join(output_dir, "predictions.csv")
    atomic_write_json(json_path, {**(info or {}), "images": list(records), "errors": list(errors)}, indent=1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in records)
    with atomic_open(csv_path, "w", newline="") as f:
        f.write(buffer.getvalue())
    return json_path, csv_path

