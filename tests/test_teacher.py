"""The label-aware mean teacher: pseudo boxes obey the image labels, per-class bars adapt as documented,
the EMA update is the documented average, the student's view maps the teacher's boxes, and a few iterations on the
tiny phantom train, checkpoint the teacher and resume it bit-exactly."""
import os

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T

from wssdl_d2.config import merge_config
from wssdl_d2.teacher import (ClassThresholds, MeanTeacher, TeacherStudentMapper, build_ema, image_diagnosis,
                              label_aware_target, label_free_target, split_weak_augmentations)

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
TEACHER = os.path.join(CONFIGS, "Phantom", "wssdl_teacher.yaml")

# detections of one image: (box, score, class)
BOXES = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70], [5, 5, 15, 15]], dtype=torch.float32)
SCORES = torch.tensor([0.9, 0.6, 0.8, 0.3])
CLASSES = torch.tensor([0, 0, 1, 1])  # benign, benign, malignant, malignant
BARS = [0.7, 0.85]


def test_benign_image_keeps_benign_boxes_above_the_bar():
    target = label_aware_target(BOXES, SCORES, CLASSES, 1, BARS)
    assert target.trusted and not target.kept_best
    assert target.classes.tolist() == [0] and target.boxes.tolist() == [[0, 0, 10, 10]]


def test_malignant_image_keeps_malignant_boxes_and_at_least_its_best_one():
    assert label_aware_target(BOXES, SCORES, CLASSES, 2, [0.7, 0.75]).classes.tolist() == [1]
    target = label_aware_target(BOXES, SCORES, CLASSES, 2, BARS)  # 0.8 < 0.85: none passes, the best one stays
    assert target.trusted and target.kept_best
    assert target.classes.tolist() == [1] and target.boxes.tolist() == [[50, 50, 60, 70]]
    dropped = label_aware_target(BOXES, SCORES, CLASSES, 2, BARS, keep_best=False)
    assert not dropped.trusted and len(dropped.boxes) == 0


def test_normal_image_keeps_nothing_and_is_a_trusted_negative():
    target = label_aware_target(BOXES, SCORES, CLASSES, 0, [0.0, 0.0])
    assert target.trusted and len(target.boxes) == 0 and len(target.classes) == 0


def test_mass_image_without_a_detection_of_its_class_is_not_trusted():
    only_benign = CLASSES.new_zeros(4)
    target = label_aware_target(BOXES, SCORES, only_benign, 2, BARS)
    assert not target.trusted and len(target.boxes) == 0
    with pytest.raises(ValueError, match="image_label"):
        label_aware_target(BOXES, SCORES, CLASSES, 3, BARS)


def test_label_free_target_ignores_the_image_label():
    target = label_free_target(BOXES, SCORES, CLASSES, [0.7, 0.7])
    assert target.trusted and target.classes.tolist() == [0, 1]  # a malignant box on any image, normal ones too
    assert image_diagnosis(SCORES, CLASSES, BARS) == 1
    assert image_diagnosis(SCORES, CLASSES, [0.95, 0.95]) == 0


def test_adaptive_bars_are_lower_for_the_class_learnt_worse():
    bars = ClassThresholds("adaptive", tau=0.8, mapping="linear", warmup=False, min_thresh=0.2, window=10)
    assert bars.thresholds().tolist() == [0.2, 0.2]  # nothing seen: every bar at its floor
    for _ in range(4):
        bars.observe(1, 0, 0.9)  # benign images: benign top detection above tau
        bars.observe(2, 1, 0.9 if _ == 0 else 0.5)  # malignant images: 1 of 4 above tau
    bars.observe(0, 1, 0.99)  # a normal image is not remembered
    assert len(bars) == 8
    np.testing.assert_allclose(bars.rates(), [1.0, 0.25])
    np.testing.assert_allclose(bars.thresholds(), [0.8, 0.25 * 0.8])  # linear: beta_c * tau, floor 0.2
    convex = ClassThresholds("adaptive", tau=0.8, mapping="convex", warmup=False, min_thresh=0.0, window=10)
    convex.load_state_dict(bars.state_dict())
    np.testing.assert_allclose(convex.thresholds(), [0.8, 0.25 / 1.75 * 0.8])
    fixed = ClassThresholds("fixed", tau=0.7)
    fixed.load_state_dict(bars.state_dict())
    assert fixed.thresholds().tolist() == [0.7, 0.7]


def test_adaptive_window_forgets_old_images():
    bars = ClassThresholds("adaptive", tau=0.8, mapping="linear", warmup=False, min_thresh=0.0, window=4)
    for _ in range(4):
        bars.observe(2, 1, 0.1)
    assert bars.rates().tolist() == [0.0, 0.0]
    for _ in range(4):
        bars.observe(2, 1, 0.95)
    assert bars.rates().tolist() == [0.0, 1.0] and len(bars) == 4


def test_ema_update_math_and_buffers():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = build_ema(student, decay=0.9)
    assert not ema.module.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        student[0].weight.add_(1.0)
    student(torch.randn(8, 3))  # moves the BatchNorm running stats, num_batches_tracked 1
    ema.update_parameters(student)  # first update: a copy
    for a, b in zip(ema.module.state_dict().values(), student.state_dict().values()):
        assert torch.equal(a, b)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        student[0].weight.mul_(3.0)
    student(torch.randn(8, 3))
    ema.update_parameters(student)
    now, current = ema.module.state_dict(), student.state_dict()
    for key in ("0.weight", "0.bias", "1.running_mean", "1.running_var"):
        torch.testing.assert_close(now[key], 0.9 * before[key] + 0.1 * current[key])
    assert int(now["1.num_batches_tracked"]) == 2  # integer buffers are copied, not averaged


def _as_uint8_chw(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def test_the_students_view_keeps_the_canvas_and_maps_the_teachers_boxes(tiny_cfg):
    cfg = tiny_cfg(TEACHER, **{"WSSDL.TEACHER.STRONG_AUG.ROTATION": 30.0})
    teacher_augs, student_augs = split_weak_augmentations(cfg)
    kinds = {type(a).__name__ for a in teacher_augs}
    assert kinds == {"RandomCropMargin", "RandomRotation", "ResizeShortestEdge", "RandomFlip"}
    names = [type(a).__name__ for a in student_augs]
    assert {"RandomBrightnessShift", "RandomContrast", "RandomSpeckle", "RandomGamma"} <= set(names)
    assert "RandomDepthCrop" not in names and names[-1] == "RandomRotation"
    image = _as_uint8_chw(96, 128)
    rotation = T.AugInput(image.copy())
    transforms = T.AugmentationList([student_augs[-1]])(rotation)
    box = np.array([[40.0, 30.0, 80.0, 60.0]])
    mapped = transforms.apply_box(box)
    assert rotation.image.shape == image.shape
    assert not np.allclose(mapped, box)  # a 30-degree rotation moves the box ...
    centre = transforms.apply_coords(np.array([[60.0, 45.0]]))
    np.testing.assert_allclose(mapped[0, :2] + mapped[0, 2:], 2 * centre[0], atol=1e-3)  # ... around its centre


def test_mapper_gives_weak_images_two_views(tiny_cfg, phantom_root):
    from detectron2.data import DatasetCatalog

    cfg = tiny_cfg(TEACHER, **{"WSSDL.TEACHER.STRONG_AUG.ROTATION": 0.0})
    mapper = TeacherStudentMapper(cfg)
    weak = DatasetCatalog.get("testphantom_train_weak_30")[0]
    strong = DatasetCatalog.get("testphantom_train_strong_30")[0]
    out = mapper(weak)
    assert out["image"].shape == out["teacher_image"].shape and out["image"].dtype == torch.uint8
    assert out["supervision"] == "weak" and out["image_label"] == weak["image_label"] and len(out["instances"]) == 0
    assert "teacher_image" not in mapper(strong)


def _teacher_cfg(tiny_cfg, config=TEACHER, **overrides):
    return tiny_cfg(config, **{
        "DATASETS.TRAIN": ("testphantom_train_strong_30", "testphantom_train_weak_30"), "DATASETS.TEST": (),
        "WSSDL.STRONG_PER_BATCH": 2, "WSSDL.WEAK_PER_BATCH": 4, "WSSDL.TEACHER.BURN_IN": 2,
        "SOLVER.MAX_ITER": 4, "SOLVER.CHECKPOINT_PERIOD": 100, "SOLVER.MOMENTUM": 0.0,
        # a teacher that has barely trained: low bars so that it proposes boxes of both classes
        "WSSDL.TEACHER.SCORE_THRESH": 0.1, "WSSDL.TEACHER.ADAPTIVE.MIN_THRESH": 0.0, **overrides})


def _train(cfg, resume=False):
    from wssdl_d2.engine import WSSDLTrainer

    torch.manual_seed(0)
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer


def _label_a_batch(trainer, batches=3):
    """Pseudo-label a few fresh batches with the trained teacher; returns the weak images' mapped dicts."""
    teacher = trainer._trainer.teacher
    loader = iter(trainer._trainer.data_loader)
    weak = []
    for _ in range(batches):
        batch = next(loader)
        teacher.label(batch)
        weak += [x for x in batch if x["supervision"] == "weak"]
    return weak


def test_teacher_trains_checkpoints_and_resumes_bit_exactly(tiny_cfg, one_thread):
    from wssdl_d2.model_zoo.safe_load import build_trained_model, load_checkpoint

    cfg = _teacher_cfg(tiny_cfg)
    trainer = _train(cfg)
    teacher = trainer._trainer.teacher
    latest = trainer.storage.latest()
    for key in ("loss_rpn_cls_pseudo", "loss_cls_pseudo", "teacher/pseudo_boxes_per_image",
                "teacher/pseudo_boxes_benign", "teacher/pseudo_boxes_malignant", "teacher/label_agreement",
                "teacher/threshold_benign", "teacher/trusted_images"):
        assert key in latest and np.isfinite(latest[key][0]), key
    assert int(teacher.ema.n_averaged) == 3  # the copy at iteration 2, the EMA steps after iterations 2 and 3
    saved = teacher.state_dict()
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    checkpoint = load_checkpoint(final)  # weights-only
    assert set(checkpoint["teacher"]) == {"model", "n_averaged", "thresholds"}
    student = trainer.model.state_dict()
    assert any(not torch.equal(v, checkpoint["teacher"]["model"][k]) for k, v in student.items()
               if v.is_floating_point())

    cfg.merge_from_list(["SOLVER.MAX_ITER", 6])
    from wssdl_d2.engine import WSSDLTrainer
    resumed = WSSDLTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    restored = resumed._trainer.teacher.state_dict()
    assert torch.equal(restored["n_averaged"], saved["n_averaged"])
    for key, value in saved["model"].items():
        assert torch.equal(restored["model"][key], value), key
    for key, value in saved["thresholds"].items():
        assert torch.equal(restored["thresholds"][key], value), key
    resumed.train()
    assert int(resumed._trainer.teacher.ema.n_averaged) == 5

    # evaluation of the run's checkpoint loads the teacher (EVAL_WITH teacher) or the student
    checkpoint = load_checkpoint(final)  # the resumed run's
    as_teacher = build_trained_model(cfg, final).state_dict()
    cfg.merge_from_list(["WSSDL.TEACHER.EVAL_WITH", "student"])
    as_student = build_trained_model(cfg, final).state_dict()
    for key, value in checkpoint["teacher"]["model"].items():
        assert torch.equal(as_teacher[key], value), key
        assert torch.equal(as_student[key], checkpoint["model"][key]), key


def test_pseudo_boxes_respect_the_image_labels_in_training(tiny_cfg, one_thread):
    trainer = _train(_teacher_cfg(tiny_cfg))
    weak = _label_a_batch(trainer)
    labels = {x["image_label"] for x in weak}
    assert labels == {0, 1, 2}, labels
    boxes = 0
    for x in weak:
        assert "pseudo_target" in x
        classes = x["instances"].gt_classes.tolist()
        if x["image_label"] == 0:
            assert x["pseudo_target"] and classes == []
        elif x["pseudo_target"]:
            assert classes and set(classes) == {x["image_label"] - 1}
            boxes += len(classes)
        assert x["instances"].image_size == tuple(x["image"].shape[-2:])
    assert boxes > 0, "the teacher proposed no box of an image's class: the test would check nothing"

    # the label-free ablation keeps the teacher's boxes whatever the label: boxes on normal images / of the other
    # class appear with the same teacher
    trainer._trainer.teacher.label_filter = False
    trainer._trainer.teacher.thresholds.mode = "fixed"
    off = [x for x in _label_a_batch(trainer) if any(
        c != x["image_label"] - 1 for c in x["instances"].gt_classes.tolist())]
    assert off, "label-free pseudo boxes never disagreed with the image label"


def test_teacher_config_errors_name_the_key(tiny_cfg):
    cfg = _teacher_cfg(tiny_cfg, **{"WSSDL.TEACHER.LABEL_FILTER": False})
    with pytest.raises(ValueError, match="THRESHOLD"):
        MeanTeacher(cfg, torch.nn.Linear(1, 1))
    cfg = _teacher_cfg(tiny_cfg, **{"WSSDL.TEACHER.EVAL_WITH": "both"})
    with pytest.raises(ValueError, match="EVAL_WITH"):
        MeanTeacher(cfg, torch.nn.Linear(1, 1))


def test_ablation_configs_differ_from_the_teacher_only_in_their_subject():
    base = merge_config(TEACHER)
    no_filter = merge_config(os.path.join(CONFIGS, "Phantom", "wssdl_teacher_no_label_filter.yaml"))
    no_mil = merge_config(os.path.join(CONFIGS, "Phantom", "wssdl_teacher_no_mil.yaml"))
    assert base.WSSDL.TEACHER.ENABLED and base.WSSDL.TEACHER.LABEL_FILTER
    assert not no_filter.WSSDL.TEACHER.LABEL_FILTER and no_filter.WSSDL.TEACHER.THRESHOLD == "fixed"
    assert no_mil.WSSDL.MIL.ALPHA.SCHEDULE == "static" and no_mil.WSSDL.MIL.ALPHA.VALUE == 0.0


def test_audit_of_a_teacher_run_against_the_true_boxes(tiny_cfg, one_thread, phantom_root):
    """tools/audit_teacher.py's package functions on a tiny run: every pseudo box of a weak mass image has its
    image's class and is matched to the true boxes of train_all; a checkpoint without a teacher is refused."""
    from detectron2.data import DatasetCatalog

    from wssdl_d2.pseudo.audit import audit
    from wssdl_d2.teacher.audit import checkpoint_thresholds, class_summary, teacher_pseudo_records

    cfg = _teacher_cfg(tiny_cfg)
    _train(cfg)
    cfg.merge_from_list(["MODEL.WEIGHTS", os.path.join(cfg.OUTPUT_DIR, "model_final.pth")])
    assert checkpoint_thresholds(cfg).shape == (2,)
    weak = DatasetCatalog.get("testphantom_train_weak_30")
    records = teacher_pseudo_records(cfg, weak)
    assert len(records) == len(weak) and all(r["supervision"] == "pseudo" for r in records)
    for r in records:
        classes = {a["category_id"] for a in r["annotations"]}
        assert classes <= ({r["image_label"] - 1} if r["image_label"] else set())
    rows = audit(records, DatasetCatalog.get("testphantom_train_all"))
    assert len(rows) == sum(len(r["annotations"]) for r in records) > 0
    lines = class_summary(rows)
    assert lines[0].startswith("all:") and any(line.startswith("malignant pseudo boxes") for line in lines)

    plain = _teacher_cfg(tiny_cfg, os.path.join(CONFIGS, "Phantom", "wssdl.yaml"),
                         **{"OUTPUT_DIR": os.path.join(cfg.OUTPUT_DIR, "plain")})
    _train(plain)
    cfg.merge_from_list(["MODEL.WEIGHTS", os.path.join(plain.OUTPUT_DIR, "model_final.pth")])
    with pytest.raises(ValueError, match="no teacher"):
        checkpoint_thresholds(cfg)


def test_the_audit_gives_the_predictor_bgr_images_whatever_the_input_format(tiny_cfg, tmp_path, monkeypatch):
    """WSSDLPredictor takes BGR images and converts them to INPUT.FORMAT itself; the audit must not convert first
    (an RGB config, as every BUSI one, would then see its colour channels swapped)."""
    import cv2

    import wssdl_d2.inference.predictor as predictor_module
    import wssdl_d2.teacher.audit as teacher_audit

    bgr = np.zeros((24, 32, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    path = str(tmp_path / "blue.png")
    cv2.imwrite(path, bgr)
    seen = []

    class Predictor:
        def __init__(self, cfg):
            pass

        def __call__(self, image_bgr):
            seen.append(image_bgr)
            empty = np.zeros((0,), np.float32)
            return type("P", (), {"boxes": np.zeros((0, 4), np.float32), "scores": empty,
                                  "classes": np.zeros((0,), np.int64)})()

    monkeypatch.setattr(predictor_module, "WSSDLPredictor", Predictor)
    monkeypatch.setattr(teacher_audit, "checkpoint_thresholds", lambda cfg: np.array([0.5, 0.5]))
    cfg = tiny_cfg(TEACHER, **{"INPUT.FORMAT": "RGB"})
    records = teacher_audit.teacher_pseudo_records(cfg, [{"file_name": path, "image_label": 1, "width": 32,
                                                           "height": 24}])
    assert len(records) == 1 and records[0]["annotations"] == []
    np.testing.assert_array_equal(seen[0], bgr)
