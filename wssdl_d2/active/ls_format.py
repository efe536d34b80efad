"""Label Studio's task format for this project: the labelling config, boxes <-> Label Studio rectangles, and an
expert's annotation read back into boxes and a diagnosis. Pure functions (no server, no network).

Label Studio stores a rectangle as ``x``, ``y`` (top-left corner), ``width``, ``height`` in percent of the
image's ``original_width`` / ``original_height``, and ``rotation`` in degrees about the top-left corner. This
project's boxes are XYXY in pixels of the original image (as :func:`wssdl_d2.data.image_io.load_image` decodes
it, the frame the PNG sent to Label Studio is made from). The conversion is exact in both directions up to float
rounding: ``x0 = x / 100 * W``, ``x1 = (x + width) / 100 * W``.

The labelling config (:data:`LABEL_CONFIG`) has one image (``$image``), rectangles ``mass`` labelled
``benign`` / ``malignant``, and a single choice ``diagnosis`` (``normal`` / ``benign`` / ``malignant``): the
image-level label. An expert who finds no mass chooses ``normal`` or draws no rectangle.
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..data.labels import IMAGE_LABEL_NAMES, THING_CLASSES

IMAGE_NAME, RECT_NAME, DIAGNOSIS_NAME = "image", "mass", "diagnosis"

#: The project's labelling config (Label Studio's XML): mass rectangles plus the image-level diagnosis.
LABEL_CONFIG = f"""<View>
  <Header value="Box every mass; choose the diagnosis of the image (normal = no mass)"/>
  <Image name="{IMAGE_NAME}" value="$image" zoom="true" zoomControl="true"/>
  <RectangleLabels name="{RECT_NAME}" toName="{IMAGE_NAME}" strokeWidth="2">
    <Label value="{THING_CLASSES[0]}" background="#28c83c"/>
    <Label value="{THING_CLASSES[1]}" background="#e62828"/>
  </RectangleLabels>
  <Choices name="{DIAGNOSIS_NAME}" toName="{IMAGE_NAME}" choice="single" showInline="true">
    <Choice value="{IMAGE_LABEL_NAMES[0]}"/>
    <Choice value="{IMAGE_LABEL_NAMES[1]}"/>
    <Choice value="{IMAGE_LABEL_NAMES[2]}"/>
  </Choices>
</View>"""


def box_to_rect_value(box: Sequence[float], width: int, height: int) -> Dict[str, float]:
    """Label Studio's rectangle ``value`` (x, y, width, height in percent, rotation 0) of an XYXY pixel box in
    an image of ``width`` x ``height`` pixels; the box is clipped to the image first."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return {"x": 100.0 * x0 / width, "y": 100.0 * y0 / height, "width": 100.0 * (x1 - x0) / width,
            "height": 100.0 * (y1 - y0) / height, "rotation": 0.0}


def rect_value_to_box(value: Dict[str, Any], width: int, height: int) -> List[float]:
    """XYXY pixel box of a Label Studio rectangle ``value`` in an image of ``width`` x ``height`` pixels, clipped
    to the image. A rotated rectangle gives the axis-aligned box around its corners (Label Studio rotates about
    the top-left corner). Raises ValueError for a value without finite x / y / width / height."""
    try:
        x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"rectangle value {value!r} needs numeric x, y, width, height") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"rectangle value {value!r} is not finite")
    x0, y0, pw, ph = x / 100.0 * width, y / 100.0 * height, w / 100.0 * width, h / 100.0 * height
    angle = math.radians(float(value.get("rotation") or 0.0))
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        xs = [x0 + dx * c - dy * s for dx, dy in ((0, 0), (pw, 0), (pw, ph), (0, ph))]
        ys = [y0 + dx * s + dy * c for dx, dy in ((0, 0), (pw, 0), (pw, ph), (0, ph))]
        box = [min(xs), min(ys), max(xs), max(ys)]
    else:
        box = [x0, y0, x0 + pw, y0 + ph]
    return [min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
            min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)]


def prediction_result(boxes: Sequence[Sequence[float]], classes: Sequence[int], scores: Sequence[float],
                      width: int, height: int, image_label: Optional[int] = None) -> List[Dict[str, Any]]:
    """The ``result`` list of a Label Studio prediction: one ``rectanglelabels`` region per detection (XYXY
    pixels, class 0 benign / 1 malignant, its score kept on the region) and, with ``image_label``, the
    ``diagnosis`` choice pre-filled with it."""
    result = []
    for k, (box, det_class, score) in enumerate(zip(boxes, classes, scores)):
        result.append({"id": f"det{k}", "from_name": RECT_NAME, "to_name": IMAGE_NAME, "type": "rectanglelabels",
                       "original_width": int(width), "original_height": int(height), "image_rotation": 0,
                       "value": {**box_to_rect_value(box, width, height),
                                 "rectanglelabels": [THING_CLASSES[int(det_class)]]},
                       "score": float(score)})
    if image_label is not None:
        result.append({"id": "diagnosis", "from_name": DIAGNOSIS_NAME, "to_name": IMAGE_NAME, "type": "choices",
                       "value": {"choices": [IMAGE_LABEL_NAMES[int(image_label)]]}})
    return result


@dataclass
class ExpertAnswer:
    """What one expert annotation says: ``boxes`` (XYXY pixels) with their ``classes`` (0 benign, 1 malignant),
    ``diagnosis`` (image label 0 / 1 / 2, None when not chosen) and ``problems`` (regions that could not be
    read, in words)."""

    boxes: List[List[float]] = field(default_factory=list)
    classes: List[int] = field(default_factory=list)
    diagnosis: Optional[int] = None
    problems: List[str] = field(default_factory=list)


def read_annotation_result(result: Sequence[Dict[str, Any]], width: int, height: int) -> ExpertAnswer:
    """An annotation's ``result`` list as an :class:`ExpertAnswer`. The image size is the task's (the size the
    PNG was made at); a region's own ``original_width`` / ``original_height`` must agree with it."""
    answer = ExpertAnswer()
    for region in result or []:
        kind, value = region.get("type"), region.get("value") or {}
        if region.get("from_name") == DIAGNOSIS_NAME and kind == "choices":
            choices = value.get("choices") or []
            if len(choices) == 1 and choices[0] in IMAGE_LABEL_NAMES:
                answer.diagnosis = IMAGE_LABEL_NAMES.index(choices[0])
            else:
                answer.problems.append(f"diagnosis {choices!r} is not one of {IMAGE_LABEL_NAMES}")
        elif region.get("from_name") == RECT_NAME and kind == "rectanglelabels":
            labels = value.get("rectanglelabels") or []
            if len(labels) != 1 or labels[0] not in THING_CLASSES:
                answer.problems.append(f"rectangle label {labels!r} is not one of {THING_CLASSES}")
                continue
            size = (region.get("original_width", width), region.get("original_height", height))
            if tuple(size) != (width, height):
                answer.problems.append(f"rectangle drawn on a {size[0]}x{size[1]} image, the task's is {width}x{height}")
                continue
            try:
                box = rect_value_to_box(value, width, height)
            except ValueError as err:
                answer.problems.append(str(err))
                continue
            if not (box[2] > box[0] and box[3] > box[1]):
                answer.problems.append(f"empty rectangle {value!r}")
                continue
            answer.boxes.append(box)
            answer.classes.append(THING_CLASSES.index(labels[0]))
    return answer

