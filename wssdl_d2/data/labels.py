"""The project's label vocabulary, defined once: image labels, detection classes, supervision kinds, colours.

Two label spaces meet in this project:

- the *image label* of a (weak or strong) image, the diagnosis: ``0`` normal, ``1`` benign, ``2`` malignant
  (:data:`IMAGE_LABEL_NAMES`; also the COCO ``category_id`` of a box in a dataset file);
- the *detection class* of a box, Detectron2's contiguous ``category_id``: ``0`` benign, ``1`` malignant
  (:data:`THING_CLASSES`), with background at index ``K = 2`` of Fast R-CNN's ``(R, K + 1)`` class scores.

:func:`image_label_to_class` and :func:`class_to_image_label` convert between them; every module uses them
instead of writing ``image_label - 1`` / ``class + 1``.
"""
#: Detection classes (Detectron2's ``thing_classes``): index = contiguous ``category_id``.
THING_CLASSES = ["benign", "malignant"]
BENIGN_CLASS, MALIGNANT_CLASS = 0, 1
#: Image labels: index = ``image_label``.
IMAGE_LABEL_NAMES = ["normal", "benign", "malignant"]
NORMAL, BENIGN, MALIGNANT = 0, 1, 2
IMAGE_LABELS = (NORMAL, BENIGN, MALIGNANT)
#: The image labels of images with a mass (the ones a box can be drawn on).
MASS_LABELS = (BENIGN, MALIGNANT)
#: What an image's boxes come from: an annotator ("strong"), none ("weak"), a model ("pseudo").
SUPERVISIONS = ("strong", "weak", "pseudo")

#: Colour of each detection class in drawings, RGB 0..255 (benign green, malignant red).
CLASS_COLORS = [(40, 200, 60), (230, 40, 40)]
#: The same colours as OpenCV's BGR tuples and as matplotlib hex strings.
CLASS_COLORS_BGR = [tuple(reversed(c)) for c in CLASS_COLORS]
CLASS_COLORS_HEX = ["#" + "".join(f"{v:02x}" for v in c) for c in CLASS_COLORS]


def image_label_to_class(image_label: int, num_classes: int = 2) -> int:
    """Detection class targeted by an image label: 1 benign -> 0, 2 malignant -> 1, 0 normal -> ``num_classes``
    (background, the last column of Fast R-CNN's ``(R, K + 1)`` scores). Raises ValueError for other labels."""
    if image_label == NORMAL:
        return num_classes
    if image_label in (BENIGN, MALIGNANT):
        return int(image_label) - 1
    raise ValueError(f"image_label must be 0 (normal), 1 (benign) or 2 (malignant), not {image_label!r}")


def class_to_image_label(det_class: int) -> int:
    """Image label of a detection class: 0 benign -> 1, 1 malignant -> 2 (the diagnosis a box of it implies)."""
    if det_class not in (BENIGN_CLASS, MALIGNANT_CLASS):
        raise ValueError(f"detection class must be 0 (benign) or 1 (malignant), not {det_class!r}")
    return int(det_class) + 1


def other_class(det_class: int) -> int:
    """The other foreground class: 0 <-> 1."""
    return 1 - int(det_class)

