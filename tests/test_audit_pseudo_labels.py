"""wssdl_d2.pseudo.audit (tools/audit_pseudo_labels.py): pseudo boxes are scored against the true boxes of the
same images."""
import csv
import os
import subprocess
import sys

import pytest
from detectron2.structures import BoxMode

from wssdl_d2.pseudo.audit import audit, audit_files, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(name, supervision, boxes, mode=BoxMode.XYXY_ABS, score=None):
    anns = [{"bbox": list(b), "bbox_mode": mode, "category_id": 1} for b in boxes]
    return {"file_name": name, "supervision": supervision, "image_label": 2, "annotations": anns,
            "pseudo_score": score}


def test_hits_and_misses_are_told_apart():
    truth = [_image("a.png", "strong", [(10, 10, 50, 50)]), _image("b.png", "strong", [(0, 0, 20, 20)], BoxMode.XYWH_ABS)]
    round_ = [_image("a.png", "pseudo", [(12, 12, 52, 52)], score=0.9),  # IoU 0.82
              _image("b.png", "pseudo", [(60, 60, 90, 90)], score=0.6),  # no overlap
              _image("c.png", "strong", [(0, 0, 5, 5)])]  # true boxes: not audited
    rows = audit(round_, truth)
    assert [(r["file_name"], r["hit"]) for r in rows] == [("a.png", True), ("b.png", False)]
    assert rows[0]["iou"] == pytest.approx(38 * 38 / (3200 - 38 * 38), rel=1e-5) and rows[1]["iou"] == 0.0
    assert "50.0% hit a true box" in summary(rows)[0]


def test_images_missing_from_the_truth_are_named():
    with pytest.raises(ValueError, match="x.png"):
        audit([_image("x.png", "pseudo", [(0, 0, 5, 5)])], [])



def test_dataset_files_are_audited_from_the_command_line(phantom_root, tmp_path):
    """A round file whose first pseudo box is the true one and whose second is far away: one hit, one miss."""
    from wssdl_d2.data.wssdl_json import load_wssdl_json
    from wssdl_d2.selftrain.pseudo_dataset import write_records

    truth_file = str(phantom_root / "train_all.json")
    masses = [d for d in load_wssdl_json(truth_file) if d["annotations"]][:2]
    boxes = [BoxMode.convert(list(masses[0]["annotations"][0]["bbox"]), masses[0]["annotations"][0]["bbox_mode"],
                             BoxMode.XYXY_ABS), [0.0, 0.0, 2.0, 2.0]]
    pseudo = [{**d, "supervision": "pseudo", "pseudo_score": score,
               "annotations": [{"bbox": box, "bbox_mode": BoxMode.XYXY_ABS,
                                "category_id": d["annotations"][0]["category_id"]}]}
              for d, box, score in zip(masses, boxes, (0.9, 0.4))]
    round_file = str(tmp_path / "train_strong.json")
    write_records(round_file, pseudo, "a round")
    rows = audit_files(round_file, truth_file)
    assert [(r["hit"], r["score"]) for r in rows] == [(True, 0.9), (False, 0.4)]
    assert rows[0]["iou"] == pytest.approx(1.0) and rows[0]["class"] == rows[0]["true_class"]
    with pytest.raises(FileNotFoundError, match="nowhere.json: file not found"):
        audit_files(round_file, str(tmp_path / "nowhere.json"))

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "audit_pseudo_labels.py"), round_file,
                           "--truth", truth_file, "--csv", str(tmp_path / "audit.csv")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all: 2 pseudo boxes, 50.0% hit a true box" in proc.stdout and "score quartile 1" in proc.stdout
    with open(tmp_path / "audit.csv") as f:
        assert [r["hit"] for r in csv.DictReader(f)] == ["True", "False"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "audit_pseudo_labels.py"), round_file,
                           "--truth", str(tmp_path / "nowhere.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error:" in proc.stderr and "nowhere.json: file not found" in proc.stderr
