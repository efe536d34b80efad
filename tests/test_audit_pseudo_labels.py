"""tools/audit_pseudo_labels.py: pseudo boxes are scored against the true boxes of the same images."""
import pytest
from detectron2.structures import BoxMode

from tool_module import load_tool


def _image(name, supervision, boxes, mode=BoxMode.XYXY_ABS, score=None):
    anns = [{"bbox": list(b), "bbox_mode": mode, "category_id": 1} for b in boxes]
    return {"file_name": name, "supervision": supervision, "image_label": 2, "annotations": anns,
            "pseudo_score": score}


def test_hits_and_misses_are_told_apart():
    truth = [_image("a.png", "strong", [(10, 10, 50, 50)]), _image("b.png", "strong", [(0, 0, 20, 20)], BoxMode.XYWH_ABS)]
    round_ = [_image("a.png", "pseudo", [(12, 12, 52, 52)], score=0.9),  # IoU 0.82
              _image("b.png", "pseudo", [(60, 60, 90, 90)], score=0.6),  # no overlap
              _image("c.png", "strong", [(0, 0, 5, 5)])]  # true boxes: not audited
    rows = load_tool("audit_pseudo_labels").audit(round_, truth)
    assert [(r["file_name"], r["hit"]) for r in rows] == [("a.png", True), ("b.png", False)]
    assert rows[0]["iou"] == pytest.approx(38 * 38 / (3200 - 38 * 38), rel=1e-5) and rows[1]["iou"] == 0.0
    assert "50.0% hit a true box" in load_tool("audit_pseudo_labels").summary(rows)[0]


def test_images_missing_from_the_truth_are_named():
    with pytest.raises(ValueError, match="x.png"):
        load_tool("audit_pseudo_labels").audit([_image("x.png", "pseudo", [(0, 0, 5, 5)])], [])
