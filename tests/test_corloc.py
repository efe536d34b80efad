"""CorLoc outcomes and metrics on hand-built images whose answers were worked out by hand."""
import math

import numpy as np
import pytest

from wssdl_d2.evaluation.froc import froc_curve, operating_point, sensitivity_at
from wssdl_d2.evaluation.metrics import compute_metrics, flat_metrics
from wssdl_d2.evaluation.outcomes import OutcomeTable, box_iou, image_outcome

GT = [[0, 0, 10, 10]]  # area 100
BENIGN, MALIGNANT = 0, 1


def outcome(image_label, gt_boxes, gt_classes, dets, tau=0.5, iou_thresh=0.5):
    """dets: list of (box, score, class)."""
    boxes = [d[0] for d in dets]
    scores = [d[1] for d in dets]
    classes = [d[2] for d in dets]
    return image_outcome(image_label, gt_boxes, gt_classes, boxes, scores, classes, tau, iou_thresh)


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 5], [5, 0, 15, 10], [0, 0, 0, 0]])
    # [0,0,10,5]: 50 / 100; [5,0,15,10]: 50 / 150; empty box: 0; disjoint: 0
    np.testing.assert_allclose(iou, [[0.5, 1 / 3, 0.0], [0.0, 0.0, 0.0]])


def test_iou_exactly_half_is_not_a_hit():
    out, lesions, fps = outcome(1, GT, [BENIGN], [([0, 0, 10, 5], 0.9, BENIGN)])  # IoU 50 / 100 = 0.5
    assert not out["hit_any"] and not out["hit_top1"]
    assert out["top1_iou"] == pytest.approx(0.5)
    assert out["fp_at_tau"] == 1 and list(fps) == [0.9] and list(lesions) == [-np.inf]
    out, _, _ = outcome(1, GT, [BENIGN], [([0, 0, 10, 6], 0.9, BENIGN)])  # IoU 60 / 100
    assert out["hit_any"] and out["hit_top1"] and out["fp_at_tau"] == 0


def test_score_exactly_tau_counts_and_below_does_not():
    assert outcome(2, GT, [MALIGNANT], [(GT[0], 0.5, MALIGNANT)])[0]["hit_any"]
    below, _, _ = outcome(2, GT, [MALIGNANT], [(GT[0], 0.49, MALIGNANT)])
    assert not below["hit_any"] and below["hit_top1"]  # top-1 ignores tau
    assert below["num_det_at_tau"] == 0 and below["predicted_label"] == 0


def test_wrong_class_is_not_a_hit_and_is_a_false_positive():
    out, lesions, fps = outcome(2, GT, [MALIGNANT], [(GT[0], 0.95, BENIGN)])
    assert not out["hit_any"] and not out["hit_top1"]
    assert math.isnan(out["top1_score"])  # no malignant detection at all
    assert out["fp_at_tau"] == 1 and list(fps) == [0.95] and list(lesions) == [-np.inf]
    assert out["malignancy_score"] == 0.0 and out["abnormality_score"] == 0.95
    assert out["predicted_label"] == 1  # called benign


def test_several_ground_truth_boxes():
    gt = [[0, 0, 10, 10], [50, 50, 70, 70]]
    dets = [([51, 51, 70, 70], 0.8, BENIGN), ([100, 100, 110, 110], 0.7, BENIGN), ([0, 0, 10, 10], 0.3, BENIGN)]
    out, lesions, fps = outcome(1, gt, [BENIGN, BENIGN], dets)
    assert out["num_gt"] == 2 and out["hit_any"] and out["hit_top1"]
    assert out["best_iou"] == pytest.approx(361 / 400)
    np.testing.assert_allclose(lesions, [0.3, 0.8])  # each mass: its best detection score
    assert list(fps) == [0.7] and out["fp_at_tau"] == 1 and out["num_det_at_tau"] == 2


def test_image_without_detections():
    out, lesions, fps = outcome(2, GT, [MALIGNANT], [])
    assert not out["hit_any"] and not out["hit_top1"] and out["has_mass"]
    assert math.isnan(out["top1_score"]) and math.isnan(out["best_iou"])
    assert out["num_det"] == 0 and out["fp_at_tau"] == 0 and out["malignancy_score"] == 0.0
    assert out["predicted_label"] == 0 and list(lesions) == [-np.inf] and len(fps) == 0


def test_top1_and_any_box_differ():
    # The top-scoring benign box misses, a lower one (still >= tau) hits: any-box right, top-1 wrong.
    dets = [([40, 40, 50, 50], 0.9, BENIGN), ([1, 1, 10, 10], 0.6, BENIGN)]
    out, _, _ = outcome(1, GT, [BENIGN], dets)
    assert out["hit_any"] and not out["hit_top1"] and out["top1_score"] == 0.9 and out["top1_iou"] == 0.0
    # A higher-scoring malignant box elsewhere does not change the benign top-1.
    out, _, _ = outcome(1, GT, [BENIGN], [([40, 40, 50, 50], 0.99, MALIGNANT), ([1, 1, 10, 10], 0.6, BENIGN)])
    assert out["hit_any"] and out["hit_top1"] and out["predicted_label"] == 2


def test_normal_image():
    out, lesions, fps = outcome(0, [], [], [([0, 0, 5, 5], 0.7, MALIGNANT), ([5, 5, 9, 9], 0.2, BENIGN)])
    assert not out["has_mass"] and not out["hit_any"] and not out["hit_top1"]
    assert out["fp_at_tau"] == 1 and len(lesions) == 0 and sorted(fps) == [0.2, 0.7]
    assert out["malignancy_score"] == 0.7 and out["predicted_label"] == 2
    with pytest.raises(ValueError, match="image_label"):
        outcome(3, [], [], [])
    with pytest.raises(ValueError, match="detections disagree"):
        image_outcome(1, GT, [0], [[0, 0, 1, 1]], [0.5, 0.6], [0])


def _hand_table(extra_normals=()):
    """4 mass images (benign hit, benign miss, malignant hit, malignant hit by a 0.4 box only), 2 normals."""
    table = OutcomeTable()
    add = table.add
    add(1, "b1", 1, GT, [BENIGN], [GT[0]], [0.9], [BENIGN])
    add(2, "b2", 1, GT, [BENIGN], [[50, 50, 60, 60]], [0.8], [BENIGN])
    add(3, "m1", 2, GT, [MALIGNANT], [GT[0], [0, 0, 10, 10]], [0.7, 0.6], [MALIGNANT, BENIGN])
    add(4, "m2", 2, GT, [MALIGNANT], [GT[0]], [0.4], [MALIGNANT])
    add(5, "n1", 0, [], [], [[0, 0, 5, 5]], [0.6], [BENIGN])
    add(6, "n2", 0, [], [], [], [], [])
    for k, dets in enumerate(extra_normals):
        add(100 + k, f"x{k}", 0, [], [], [d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets])
    return table


def test_metrics_by_hand():
    report = compute_metrics(_hand_table(), num_samples=500, seed=1)
    m = {k: v["value"] for k, v in report["metrics"].items()}
    assert m["CorLoc"] == pytest.approx(50.0)  # b1, m1 (m2's box is below tau)
    assert m["CorLoc-benign"] == pytest.approx(50.0) and m["CorLoc-malignant"] == pytest.approx(50.0)
    assert m["CorLoc_top1"] == pytest.approx(75.0)  # b1, m1, m2
    assert m["CorLoc_top1-malignant"] == pytest.approx(100.0)
    assert m["FP_per_normal"] == pytest.approx(0.5)  # n1 one box >= tau, n2 none
    # predicted labels: b1 B, b2 B, m1 M, m2 N (0.4 < tau), n1 B, n2 N -> 4 of 6 right
    assert m["Accuracy"] == pytest.approx(400 / 6)
    assert report["diagnosis"]["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # malignancy scores: b1 0, b2 0, m1 0.7, m2 0.4 -> every malignant above every benign
    assert m["AUC_BvsM"] == pytest.approx(1.0)
    # abnormality: masses 0.9 0.8 0.7 0.4 vs normals 0.6 0: 7 of 8 pairs
    assert m["AUC_NvsMass"] == pytest.approx(7 / 8)
    assert report["counts"] == {"images": 6, "normal": 2, "benign": 2, "malignant": 2, "mass_images": 4,
                                "lesions": 4, "benign_with_box": 2, "malignant_with_box": 2}
    flat = flat_metrics(report)
    assert flat["CorLoc"] == m["CorLoc"] and flat["CorLoc_lo"] <= flat["CorLoc"] <= flat["CorLoc_hi"]
    assert all(isinstance(v, float) for v in flat.values())


def test_normal_images_only_change_the_false_positive_rate():
    base = compute_metrics(_hand_table(), num_samples=200)["metrics"]
    noisy = compute_metrics(_hand_table(extra_normals=[[([0, 0, 9, 9], 0.9, MALIGNANT), ([1, 1, 4, 4], 0.8, BENIGN)]]),
                            num_samples=200)["metrics"]
    for name in ("CorLoc", "CorLoc-benign", "CorLoc-malignant", "CorLoc_top1", "AUC_BvsM"):
        assert noisy[name]["value"] == base[name]["value"], name
    assert noisy["FP_per_normal"]["value"] == pytest.approx(3 / 3)  # 1 + 0 + 2 boxes over 3 normals


def test_froc_by_hand():
    curve = froc_curve([0.9, 0.6, -np.inf], [0.8, 0.3], num_images=4)
    np.testing.assert_allclose(curve["thresholds"], [0.9, 0.8, 0.6, 0.3])
    np.testing.assert_allclose(curve["sensitivity"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve["fppi"], [0, 0.25, 0.25, 0.5])
    assert sensitivity_at(curve, (0.125, 0.25, 8)) == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert operating_point([0.9, 0.6, -np.inf], [0.8, 0.3], 4, 0.5) == pytest.approx((2 / 3, 0.25))
    assert sensitivity_at(froc_curve([0.5], [0.9, 0.8], 1), (0.5,)) == [0.0]  # no threshold strict enough


def test_froc_of_the_hand_table():
    froc = compute_metrics(_hand_table(), num_samples=100)["froc"]
    # lesions: b1 0.9, b2 -inf, m1 0.7, m2 0.4; false positives: b2 0.8, m1's benign box 0.6, n1 0.6; 6 images
    assert froc["at_tau"]["sensitivity"] == pytest.approx(0.5)
    assert froc["at_tau"]["fppi"] == pytest.approx(3 / 6)
    assert froc["thresholds"] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.4])
    assert froc["sensitivity"] == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.75])
