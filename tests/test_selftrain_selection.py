"""The self-training selection rule on hand-built detections: class consistency, ranking, fraction, adaptive
per-class bars; pseudo boxes written with their provenance."""
import json

import numpy as np
import pytest

from wssdl_d2.data.wssdl_json import load_wssdl_json
from wssdl_d2.pseudo.selection import (Candidate, adaptive_thresholds, is_consistent, learning_rates, rank,
                                       select_adaptive, select_fraction,
                                       select_fraction_per_class, select_from_config)
from wssdl_d2.selftrain.pseudo_dataset import pseudo_record, write_records

BOX = (10.0, 20.0, 50.0, 60.0)


def cand(key, label, det_class, score):
    return Candidate(key, label, BOX, det_class, score)


def test_class_mismatch_normal_and_no_detection_are_excluded():
    pool = [cand("b_ok", 1, 0, 0.6), cand("b_as_m", 1, 1, 0.99), cand("m_ok", 2, 1, 0.7),
            cand("m_as_b", 2, 0, 0.98), cand("normal", 0, 0, 0.97), Candidate("nothing", 2)]
    assert [c.key for c in pool if is_consistent(c)] == ["b_ok", "m_ok"]
    assert [c.key for c in select_fraction(pool, 1.0)] == ["m_ok", "b_ok"]


def test_ranking_by_score_and_fraction_of_the_consistent_images():
    pool = [cand(f"img{i}", 1 + i % 2, i % 2, s) for i, s in enumerate([0.2, 0.9, 0.5, 0.7, 0.95, 0.1, 0.6, 0.3])]
    pool.append(cand("mismatch", 1, 1, 0.999))
    ranked = rank(pool)
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    assert "mismatch" not in [c.key for c in ranked]
    assert [c.key for c in select_fraction(pool, 0.5)] == ["img4", "img1", "img3", "img6"]  # 4 of 8
    assert len(select_fraction(pool, 0.75)) == 6
    assert len(select_fraction(pool, 0.0)) == 0
    assert len(select_fraction(pool, 0.3)) == 2  # 2.4 -> 2
    with pytest.raises(ValueError, match="fraction"):
        select_fraction(pool, 1.5)


def test_per_class_fraction_keeps_the_class_mix_that_one_ranking_loses():
    # 6 confident benign images, 4 less confident malignant ones: the overall top half is all benign
    pool = [cand(f"b{i}", 1, 0, 0.99 - 0.01 * i) for i in range(6)]
    pool += [cand(f"m{i}", 2, 1, 0.80 - 0.01 * i) for i in range(4)]
    pool.append(cand("m_as_b", 2, 0, 0.999))  # inconsistent: never taken, and not counted in either class
    assert {c.det_class for c in select_fraction(pool, 0.5)} == {0}
    balanced = select_fraction_per_class(pool, 0.5)
    assert [c.key for c in balanced] == ["b0", "b1", "b2", "m0", "m1"]  # 3 of 6 benign, 2 of 4 malignant, ranked
    assert select_fraction_per_class(pool, 1.0) == rank(pool)
    with pytest.raises(ValueError, match="fraction"):
        select_fraction_per_class(pool, -0.1)


def test_selection_from_config_reports_counts_per_class():
    from detectron2.config import get_cfg

    from wssdl_d2.config import add_wssdl_config

    pool = [cand("b0", 1, 0, 0.9), cand("b1", 1, 0, 0.8), cand("m0", 2, 1, 0.6), cand("m1", 2, 1, 0.5)]
    cfg = get_cfg()
    add_wssdl_config(cfg)
    cfg.WSSDL.SELFTRAIN.FRACTION = 0.5
    cfg.WSSDL.SELFTRAIN.SELECTION = "fraction_per_class"
    selected, info = select_from_config(pool, cfg)
    assert [c.key for c in selected] == ["b0", "m0"]
    assert info["selected_per_class"] == [1, 1] and info["consistent"] == 4 and info["fraction"] == 0.5
    cfg.WSSDL.SELFTRAIN.SELECTION = "fraction"
    assert select_from_config(pool, cfg)[1]["selected_per_class"] == [2, 0]
    cfg.WSSDL.SELFTRAIN.SELECTION = "top_k"
    with pytest.raises(ValueError, match="fraction_per_class"):
        select_from_config(pool, cfg)


def test_ties_are_broken_by_file_name_reproducibly():
    pool = [cand("c", 1, 0, 0.8), cand("a", 1, 0, 0.8), cand("b", 2, 1, 0.8)]
    assert [c.key for c in rank(pool)] == ["a", "b", "c"]
    assert [c.key for c in rank(pool[::-1])] == ["a", "b", "c"]


def test_adaptive_bar_is_lower_for_the_class_learnt_worse():
    # benign: 4 of 4 images confidently right; malignant: 1 of 4
    pool = [cand(f"b{i}", 1, 0, 0.95) for i in range(4)]
    pool += [cand("m0", 2, 1, 0.95), cand("m1", 2, 1, 0.6), cand("m2", 2, 1, 0.55), cand("m3", 2, 0, 0.9)]
    rates, unlearnt = learning_rates(pool, tau=0.9)
    assert rates.tolist() == [1.0, 0.25] and unlearnt == pytest.approx(3 / 8)
    selected, bars, _ = select_adaptive(pool, tau=0.9, warmup=True, min_thresh=0.0)
    assert bars[0] == pytest.approx(0.9) and bars[1] < bars[0]
    # the malignant images below tau but above their class's lower bar are taken; m3 (wrong class) is not
    assert bars[1] == pytest.approx(0.9 * 0.25 / 1.75)
    assert {c.key for c in selected} == {"b0", "b1", "b2", "b3", "m0", "m1", "m2"}  # m3: wrong class
    # with one fixed bar tau the worse-learnt class would get a single pseudo label
    assert [c.key for c in rank(pool) if c.score >= 0.9 and c.det_class == 1] == ["m0"]


def test_adaptive_bars_move_with_the_learning_effect():
    low = adaptive_thresholds([0.8, 0.2], tau=0.9, mapping="convex", warmup=False)
    higher = adaptive_thresholds([0.8, 0.6], tau=0.9, mapping="convex", warmup=False)
    assert low[0] == pytest.approx(0.9) and higher[0] == pytest.approx(0.9)
    assert low[1] < higher[1] < 0.9  # a class that learns better gets a higher bar
    # convex mapping is below linear for a partly learnt class; equal for a learnt one
    linear = adaptive_thresholds([0.8, 0.2], tau=0.9, mapping="linear", warmup=False)
    assert low[1] < linear[1] and linear[0] == pytest.approx(0.9)
    # warm-up: while most images are unlearnt, every bar stays low
    warm = adaptive_thresholds([0.2, 0.1], tau=0.9, unlearnt=0.85, warmup=True)
    assert (warm < 0.9 * 0.3).all()
    assert adaptive_thresholds([0.2, 0.1], tau=0.9, warmup=False)[0] == pytest.approx(0.9)
    # the floor
    assert (adaptive_thresholds([1.0, 0.0], tau=0.9, min_thresh=0.5, warmup=False) >= 0.5).all()
    with pytest.raises(ValueError, match="MAPPING"):
        adaptive_thresholds([1, 1], mapping="cubic")


def test_pseudo_boxes_land_in_the_written_dataset_with_provenance(tmp_path):
    strong = [{"file_name": str(tmp_path / "img" / "s.png"), "width": 100, "height": 80, "image_id": 7,
               "supervision": "strong", "image_label": 2,
               "annotations": [{"bbox": [1.0, 2.0, 30.0, 40.0], "bbox_mode": 0, "category_id": 1, "iscrowd": 0,
                                "source": "mask"}]}]
    weak = {"file_name": str(tmp_path / "img" / "sub" / "w.png"), "width": 100, "height": 80, "image_id": 3,
            "supervision": "weak", "image_label": 1, "annotations": []}
    pseudo = pseudo_record(weak, cand(weak["file_name"], 1, 0, 0.87), 2, "round_1/model_final.pth")
    path = tmp_path / "train_strong.json"
    write_records(str(path), strong + [pseudo], "test")
    data = json.loads(path.read_text())
    by_name = {im["file_name"]: im for im in data["images"]}
    assert data["info"]["image_root"] == str(tmp_path / "img")
    assert by_name["sub/w.png"]["supervision"] == "pseudo" and by_name["sub/w.png"]["pseudo_score"] == 0.87
    anns = {a["image_id"]: a for a in data["annotations"]}
    p = anns[by_name["sub/w.png"]["id"]]
    assert p["source"] == "pseudo" and p["score"] == 0.87 and p["round"] == 2
    assert p["model"] == "round_1/model_final.pth" and p["category_id"] == 1 and p["bbox"] == [10, 20, 40, 40]
    assert anns[by_name["s.png"]["id"]]["source"] == "mask"
    # and it loads back, pseudo image in the strong stream with its box and provenance
    loaded = {d["file_name"]: d for d in load_wssdl_json(str(path))}
    box = loaded[weak["file_name"]]["annotations"][0]
    assert loaded[weak["file_name"]]["supervision"] == "pseudo"
    assert box["source"] == "pseudo" and box["round"] == 2 and np.allclose(box["bbox"], BOX)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_records(str(path), strong, "again", overwrite=False)
