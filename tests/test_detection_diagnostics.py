"""Detection diagnostics (wssdl_d2.data.overlays, wssdl_d2.evaluation.detection_diagnostics / diagnostics_report,
tools/diagnose_detections.py) on small generated images and results."""
import csv
import json
import os

import cv2
import numpy as np
import pytest

from wssdl_d2.data.overlays import color_mask, field_of_view_box, overlay_mask
from wssdl_d2.data.phantom import generate_image
from wssdl_d2.evaluation.detection_diagnostics import (align, as_columns, border_distance, box_mask_counts,
                                                       class_confusion, discordant_profile, image_diagnostics,
                                                       miss_reason, paired_flags, subgroup_differences, summarize)
from wssdl_d2.evaluation import results_io
from wssdl_d2.evaluation.diagnostics_report import build_report, diagnose_runs, markdown, parse_run
from wssdl_d2.evaluation.outcomes import OutcomeTable
from wssdl_d2.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tool(argv):
    """wssdl_d2.cli.diagnose_detections (tools/diagnose_detections.py) in this process, as its main runs it: its
    report, or SystemExit."""
    from wssdl_d2.cli import diagnose_detections as tool

    return run_main(tool.run, argv, errors=tool.ERRORS)


def phantom(seed=0, label=0):
    return generate_image(np.random.default_rng(seed), label).image  # (256, 320) uint8


def draw_caliper(image, x, y, size=6):
    """A near-white '+' caliper mark, 1 px wide, centred at (x, y)."""
    cv2.line(image, (x - size, y), (x + size, y), 235, 1)
    cv2.line(image, (x, y - size), (x, y + size), 235, 1)
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_phantom_scans_have_no_overlay(seed):
    for label in (0, 1, 2):
        assert overlay_mask(phantom(seed, label)).sum() == 0


def test_caliper_and_text_are_flagged_where_drawn():
    image = draw_caliper(phantom(), 100, 120)
    cv2.putText(image, "RT AXILLA", (20, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 240, 1)
    mask = overlay_mask(image)
    near_caliper = mask[112:129, 92:109].sum()
    near_text = mask[10:40, 10:130].sum()
    assert near_caliper >= 10 and near_text >= 30
    assert mask.sum() == near_caliper + near_text  # nothing flagged elsewhere


def test_colour_marks_count_and_grayscale_bgr_does_not():
    gray = phantom()
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    assert not color_mask(bgr).any() and not overlay_mask(bgr).any()
    bgr[50:53, 60:90] = (0, 200, 255)  # a yellow (BGR) ruler tick, dim in grey
    assert overlay_mask(bgr)[50:53, 60:90].all()
    assert overlay_mask(bgr).sum() == 90


def test_overlay_mask_refuses_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        overlay_mask(np.zeros((10, 10), np.float32))


def test_field_of_view_box_ignores_text_on_the_black_margin():
    image = np.zeros((200, 300), np.uint8)
    image[20:180, 50:250] = 120
    cv2.putText(image, "LOGIQ", (2, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
    assert field_of_view_box(image) == (50.0, 20.0, 250.0, 180.0)
    assert field_of_view_box(np.zeros((5, 7), np.uint8)) == (0.0, 0.0, 7.0, 5.0)


def test_box_mask_counts_match_a_direct_count():
    rng = np.random.default_rng(0)
    mask = rng.random((40, 50)) < 0.3
    boxes = np.array([[0, 0, 50, 40], [3.2, 4.7, 10.1, 20.0], [45, 35, 80, 90], [10, 10, 10, 30]])
    expected = [mask.sum(), mask[4:20, 3:11].sum(), mask[35:40, 45:50].sum(), 0]
    assert box_mask_counts(boxes, mask).tolist() == expected


def test_border_distance():
    boxes = [[0, 10, 20, 30], [10, 10, 90, 60], [30, 30, 40, 40], [-5, -5, 105, 105]]
    assert border_distance(boxes, (0, 0, 100, 70)).tolist() == [0.0, 10.0, 30.0, 0.0]
    assert border_distance(boxes, (10, 10, 90, 60)).tolist() == [0.0, 0.0, 20.0, 0.0]


def test_class_confusion_counts():
    m = class_confusion([0, 1, 1, 2, 2, 2], [0, 2, 1, 1, 2, 0])
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [1, 1, 1]]
    with pytest.raises(ValueError):
        class_confusion([0, 3], [0, 1])


def test_miss_reasons():
    gt, gtc = [[10, 10, 50, 50]], [0]  # a benign mass
    on, off = [10, 10, 50, 50], [60, 60, 90, 90]
    assert miss_reason(1, gt, gtc, [on], [0.9], [0], True) == "hit"
    assert miss_reason(1, gt, gtc, [on], [0.9], [1], False) == "wrong_class"
    assert miss_reason(1, gt, gtc, [on], [0.3], [0], False) == "low_score"
    assert miss_reason(1, gt, gtc, [on], [0.3], [1], False) == "elsewhere"  # wrong class and below tau
    assert miss_reason(1, gt, gtc, [off], [0.9], [0], False) == "elsewhere"
    assert miss_reason(1, gt, gtc, [], [], [], False) == "elsewhere"
    assert miss_reason(0, [], [], [off], [0.9], [0], False) == ""


def entry(label, gt, det, scores, classes, name="a.png"):
    return {"file_name": name, "image_label": label, "gt_boxes": gt, "gt_classes": [label - 1] * len(gt),
            "boxes": det, "scores": scores, "classes": classes}


def test_image_diagnostics_border_overlay_and_size():
    overlay = np.zeros((100, 200), bool)
    overlay[40:45, 100:105] = True  # a caliper beside the mass
    e = entry(1, [[60, 30, 100, 70]], [[2, 20, 40, 50], [60, 30, 100, 70]], [0.9, 0.8], [0, 0])
    row = image_diagnostics(e, overlay, (0, 0, 200, 100), border_px=5, min_overlay_px=10, near_px=10)
    assert row["top_at_border"] and row["top_at_fov_edge"] and row["top_border_px"] == 2
    assert not row["top_covers_overlay"] and row["has_calipers"] and row["has_overlay"]
    assert row["hit_any"] and not row["hit_top1"] and row["miss_reason"] == "hit"
    assert row["fp_at_tau"] == 1 and row["fp_at_border"] == 1 and row["fp_covers_overlay"] == 0
    assert row["top_area_frac"] == pytest.approx(38 * 30 / 20000)
    assert row["mass_area_frac"] == pytest.approx(0.08) and row["top_iou"] == 0.0
    # a field of view narrower than the frame: a box 3 px from its right edge, 20 px from the frame's
    e_fov = entry(1, [[10, 30, 50, 70]], [[100, 20, 140, 50]], [0.9], [0])
    row = image_diagnostics(e_fov, overlay, (0, 0, 143, 100), border_px=5, min_overlay_px=10)
    assert not row["top_at_border"] and row["top_at_fov_edge"] and row["top_fov_px"] == 3
    assert row["top_border_px"] == 20 and row["top_overlay_px"] == 25 and row["top_covers_overlay"]
    # calipers in the frame margin (corner markers) do not count
    corner = np.zeros((100, 200), bool)
    corner[0:4, 55:70] = True
    e2 = entry(1, [[60, 5, 100, 50]], [], [], [])
    row = image_diagnostics(e2, corner, (0, 0, 200, 100), border_px=5, min_overlay_px=10, near_px=10)
    assert row["has_overlay"] and not row["has_calipers"] and row["top_class"] == -1


def columns_of(rows, fold=0):
    return as_columns([{"fold": fold, **r} for r in rows])


def test_summaries_and_paired_statistics():
    overlay = np.zeros((100, 100), bool)
    gt = [[30, 30, 60, 60]]
    rows_a, rows_b = [], []
    for k in range(20):  # A hits 15 of 20, B hits 10 (the first 10); both on the same images
        label = 1 + k % 2
        a_box = gt[0] if k < 15 else [0, 0, 20, 20]
        b_box = gt[0] if k < 10 else [0, 0, 20, 20]
        rows_a.append(image_diagnostics(entry(label, gt, [a_box], [0.9], [label - 1], f"{k}.png"), overlay,
                                        (0, 0, 100, 100)))
        rows_b.append(image_diagnostics(entry(label, gt, [b_box], [0.9], [label - 1], f"{k}.png"), overlay,
                                        (0, 0, 100, 100)))
    rows_a.append(image_diagnostics(entry(0, [], [[0, 0, 10, 10]], [0.7], [1], "n.png"), overlay, (0, 0, 100, 100)))
    rows_b.append(image_diagnostics(entry(0, [], [], [], [], "n.png"), overlay, (0, 0, 100, 100)))
    a, b = columns_of(rows_a), columns_of(rows_b[::-1])
    s = summarize(a)
    assert s["CorLoc"] == (15, 20) and s["miss_elsewhere"] == (5, 20) and s["top_at_border_mass"] == (5, 20)
    assert s["normal_with_detection_at_tau"] == (1, 1) and s["confusion"][0] == [0, 0, 1]
    assert s["true_malignant"] == (10, 20) and s["fp_at_tau"] == (6, 21)
    b = align(a, b)
    assert list(b["file_name"]) == list(a["file_name"])
    d = discordant_profile(a, b, {"malignant": a["image_label"] == 2})
    assert d["_counts"]["a_only"] == 5 and d["_counts"]["b_only"] == 0
    assert d["malignant"]["a_only"] == (2, 5)  # images 11, 13
    sub = subgroup_differences(a, b, {"all": np.ones(21, bool), "benign": a["image_label"] == 1}, num_samples=200)
    assert sub["all"]["n"] == 20 and sub["all"]["diff"] == pytest.approx(25.0)
    assert sub["all"]["mcnemar"]["a_only"] == 5 and sub["all"]["ci"][0] > 0
    assert sub["benign"]["n"] == 10 and sub["benign"]["diff"] == pytest.approx(30.0)
    flags = paired_flags(a, b, "top_at_border")
    assert (flags["a"], flags["b"], flags["b_only"]) == (6, 10, 5)
    with pytest.raises(ValueError, match="different images"):
        align(a, columns_of(rows_b[:-1]))


def test_parse_run():
    assert parse_run("x=out/fold3,out/fold1/breast,other") == ("x", [(3, "out/fold3"), (1, "out/fold1/breast"),
                                                                     (2, "other")])
    with pytest.raises(ValueError, match="NAME=FOLDER"):
        parse_run("just_a_folder")


def write_results(folder, images, saved_hits=None):
    """A results folder as the CorLoc evaluator writes it; ``saved_hits`` overrides the CSV's hit_any flags."""
    inference = os.path.join(folder, "inference")
    os.makedirs(inference, exist_ok=True)
    with open(os.path.join(inference, "corloc_detections.json"), "w") as f:
        json.dump(images, f)
    table = OutcomeTable()
    for k, e in enumerate(images):
        row = table.add(k, e["file_name"], e["image_label"], e["gt_boxes"], e["gt_classes"], e["boxes"], e["scores"],
                        e["classes"])
        if saved_hits is not None:
            row["hit_any"] = saved_hits[k]
    results_io.write_per_image(inference, table.rows)


def make_dataset(tmp_path):
    """Four phantom images (two with a caliper beside the mass, one normal); run A finds every mass, run B's
    boxes on the caliper images sit on the calipers instead. Returns (runs, files)."""
    files, gts = [], []
    for k, label in enumerate((1, 2, 1, 0)):
        image = phantom(k, label)
        gt = [[100, 80, 160, 140]] if label else []
        if k < 2:
            draw_caliper(image, 175, 110)
        path = str(tmp_path / f"img{k}.png")
        cv2.imwrite(path, image)
        files.append(path)
        gts.append(gt)
    caliper_box = [165, 100, 185, 120]
    run_a = [entry(lab, gt, [gt[0]] if gt else [[0, 0, 30, 30]], [0.9], [max(lab - 1, 0)], f)
             for lab, gt, f in zip((1, 2, 1, 0), gts, files)]
    run_b = [dict(e, boxes=[caliper_box] if k < 2 else e["boxes"]) for k, e in enumerate(run_a)]
    write_results(str(tmp_path / "A" / "fold0"), run_a[:2])
    write_results(str(tmp_path / "A" / "fold1"), run_a[2:])
    write_results(str(tmp_path / "B" / "fold0"), run_b[:2])
    write_results(str(tmp_path / "B" / "fold1"), run_b[2:])
    return files


def test_tool_runs_end_to_end(tmp_path, capsys):
    make_dataset(tmp_path)
    out = tmp_path / "why"
    run_tool(["--out", str(out), "--crossval", str(tmp_path), "--configs", "A", "B", "--samples", "200"])
    printed = capsys.readouterr().out
    assert "| CorLoc (score >= tau), mass images | 100.0 (3/3) | 33.3 (1/3) |" in printed
    assert "| mass images with marks on / beside the mass (calipers) | 66.7 (2/3) | 66.7 (2/3) |" in printed
    assert "| top box covers overlay pixels, mass images | 0.0 (0/3) | 66.7 (2/3) |" in printed
    assert "| CorLoc, mass images with calipers | 100.0 (2/2) | 0.0 (0/2) |" in printed
    assert (out / "report.md").read_text() in printed
    report = json.loads((out / "report.json").read_text())
    assert not report["per_model"] and report["settings"]["tau"] == 0.5
    pair = report["pairs"]["B"]["pooled"]
    assert pair["subgroups"]["with calipers"]["diff"] == pytest.approx(-100.0)
    assert pair["subgroups"]["without calipers"]["diff"] == pytest.approx(0.0)
    rows = list(csv.DictReader(open(out / "B.csv")))
    assert [r["fold"] for r in rows] == ["0", "0", "1", "1"]
    assert [r["miss_reason"] for r in rows] == ["elsewhere", "elsewhere", "hit", ""]


def test_saved_outcomes_win_over_rounded_scores(tmp_path):
    """corloc_detections.json rounds scores (0.49996 -> 0.5): the hit flag comes from corloc_per_image.csv."""
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, phantom(0, 1))
    e = entry(1, [[100, 80, 160, 140]], [[100, 80, 160, 140]], [0.5], [0], path)
    write_results(str(tmp_path / "R" / "fold0"), [e], saved_hits=[False])
    columns = diagnose_runs({"R": [(0, str(tmp_path / "R" / "fold0"))]})[0]["R"]
    assert not columns["hit_any"][0] and columns["miss_reason"][0] == "low_score"
    write_results(str(tmp_path / "S" / "fold0"), [e])
    columns = diagnose_runs({"S": [(0, str(tmp_path / "S" / "fold0"))]})[0]["S"]
    assert columns["hit_any"][0] and columns["miss_reason"][0] == "hit"


def test_per_model_layout_and_errors(tmp_path, capsys):
    files = make_dataset(tmp_path)
    a = [(0, str(tmp_path / "A" / "fold0")), (1, str(tmp_path / "A" / "fold0"))]  # two models, same images
    b = [(0, str(tmp_path / "B" / "fold0")), (1, str(tmp_path / "B" / "fold0"))]
    columns, _ = diagnose_runs({"A": a, "B": b})
    report = build_report(columns, num_samples=100)
    assert report["per_model"] and set(report["pairs"]["B"]["folds"]) == {0, 1}
    text = markdown(report)
    assert "mean (range) over fold models" in text and "Spearman" in text
    os.remove(files[0])
    with pytest.raises(SystemExit) as exit_:
        run_tool(["--out", str(tmp_path / "x"), "--runs", f"A={tmp_path / 'A' / 'fold0'}"])
    assert exit_.value.code == 2 and "img0.png" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_tool(["--out", str(tmp_path / "x"), "--runs", f"A={tmp_path / 'nothing'}"])
    assert "nothing" in capsys.readouterr().err
