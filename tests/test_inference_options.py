"""Inference options of the detector.

- WSSDL.TEST.DETECTION_SCORE "mass": a detection is scored by its mass probability, the diagnosis is kept, nothing
  else changes (weights, boxes, training);
- TEST.AUG (Detectron2's test-time augmentation) through WSSDLTrainer.test: one view without flip gives the model's
  own detections; flipped views are merged in.
"""
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from detectron2.modeling import GeneralizedRCNNWithTTA

from wssdl_d2.config import merge_config
from wssdl_d2.config_file import ConfigError
from wssdl_d2.modeling.box_predictor import WSSDLOutputLayers, mass_scores

PHANTOM = "configs/Phantom/strong_only.yaml"


def test_mass_scores_moves_the_foreground_sum_onto_the_argmax_class():
    probs = torch.tensor([[0.45, 0.45, 0.10],    # undecided, sure of a mass: ties go to the first class
                          [0.20, 0.70, 0.10],    # malignant
                          [0.05, 0.02, 0.93]])   # background
    out = mass_scores(probs)
    torch.testing.assert_close(out, torch.tensor([[0.90, 0.45, 0.10], [0.20, 0.90, 0.10], [0.07, 0.02, 0.93]]))
    assert torch.equal(probs[2], torch.tensor([0.05, 0.02, 0.93]))  # input untouched
    assert mass_scores(torch.zeros(0, 3)).shape == (0, 3)


def test_mass_scores_properties_on_random_rows():
    torch.manual_seed(0)
    probs = torch.randn(500, 3).softmax(dim=1)
    out = mass_scores(probs)
    fg = probs[:, :2]
    best = fg.argmax(dim=1)
    rows = torch.arange(500)
    # the argmax class is still the largest foreground score, now the mass probability
    assert torch.equal(out[:, :2].argmax(dim=1), best)
    torch.testing.assert_close(out[rows, best], 1 - probs[:, 2])
    # the other class keeps its probability, which is below 0.5 (it never counts at the usual threshold)
    other = 1 - best
    assert torch.equal(out[rows, other], probs[rows, other])
    assert (out[rows, other] < 0.5).all()
    assert (out[:, :2] >= probs[:, :2]).all()


def _model(tiny_cfg, mode):
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.NAME": "WSSDLROIHeads", "WSSDL.TEST.DETECTION_SCORE": mode,
                      "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_mass_mode_detections_on_one_model(tiny_cfg):
    """The same weights in both modes: one "mass" detection per proposal of its argmax class scoring
    1 - p_background, and never a lower score than the class mode's for any box of that class."""
    class_model = _model(tiny_cfg, "class")
    mass_model = _model(tiny_cfg, "mass")
    mass_model.load_state_dict(class_model.state_dict())
    assert isinstance(mass_model.roi_heads.box_predictor, WSSDLOutputLayers)
    image = torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8)
    with torch.no_grad():
        (by_class,), (by_mass,) = class_model([{"image": image}]), mass_model([{"image": image}])
    a, b = by_class["instances"], by_mass["instances"]
    assert len(a) and len(b)
    # The highest mass score is at least the highest class score: 1 - p_bg >= max_c p_c.
    assert b.scores.max() >= a.scores.max() - 1e-6
    # Same predictions through both predictors: the mass mode's probabilities are mass_scores of the class mode's.
    torch.manual_seed(1)
    logits, deltas = torch.randn(7, 3), torch.randn(7, 8)
    proposals = [Instances((96, 128), proposal_boxes=Boxes(torch.rand(n, 4) * 50)) for n in (3, 4)]
    mass_probs = mass_model.roi_heads.box_predictor.predict_probs((logits, deltas), proposals)
    class_probs = class_model.roi_heads.box_predictor.predict_probs((logits, deltas), proposals)
    assert [len(p) for p in mass_probs] == [3, 4]
    for by_mass_probs, by_class_probs in zip(mass_probs, class_probs):
        torch.testing.assert_close(by_mass_probs, mass_scores(by_class_probs))
        assert not torch.equal(by_mass_probs, by_class_probs)


def test_config_refuses_an_unknown_mode_and_heads_that_ignore_mass(tmp_path):
    with pytest.raises(ConfigError, match="DETECTION_SCORE must be one of"):
        merge_config(PHANTOM, ["WSSDL.TEST.DETECTION_SCORE", "objectness"])
    with pytest.raises(ConfigError, match="needs MODEL.ROI_HEADS.NAME WSSDLROIHeads"):
        merge_config(PHANTOM, ["WSSDL.TEST.DETECTION_SCORE", "mass", "MODEL.ROI_HEADS.NAME", "StandardROIHeads"])
    cfg = merge_config(PHANTOM, ["WSSDL.TEST.DETECTION_SCORE", "mass"])
    assert cfg.MODEL.ROI_HEADS.NAME in ("WSSDLROIHeads", "MILROIHeads")
    cfg = merge_config("configs/Phantom/wssdl.yaml", ["WSSDL.TEST.DETECTION_SCORE", "mass"])
    assert cfg.MODEL.ROI_HEADS.NAME == "MILROIHeads"


def test_test_time_augmentation_with_one_view_gives_the_models_detections(tiny_cfg):
    cfg = tiny_cfg(**{"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0, "TEST.AUG.ENABLED": True,
                      "TEST.AUG.MIN_SIZES": (cfg_size := 96,), "TEST.AUG.MAX_SIZE": 1000, "TEST.AUG.FLIP": False,
                      "INPUT.MIN_SIZE_TEST": cfg_size, "INPUT.MAX_SIZE_TEST": 1000})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8)
    inputs = [{"image": image, "height": 96, "width": 128}]
    with torch.no_grad():
        (own,) = model(inputs)
        (one_view,) = GeneralizedRCNNWithTTA(cfg, model)(inputs)
        cfg.defrost()
        cfg.TEST.AUG.FLIP = True
        (flipped,) = GeneralizedRCNNWithTTA(cfg, model)(inputs)
    a, b = own["instances"], one_view["instances"]
    assert len(a) > 0
    order_a, order_b = a.scores.argsort(descending=True), b.scores.argsort(descending=True)
    torch.testing.assert_close(b.scores[order_b], a.scores[order_a])
    torch.testing.assert_close(b.pred_boxes.tensor[order_b], a.pred_boxes.tensor[order_a], atol=1e-3, rtol=0)
    # a mirrored view adds its own detections before the merge: a top score at least the single view's
    assert flipped["instances"].scores.max() >= a.scores.max() - 1e-6


def test_trainer_test_wraps_the_model_when_test_aug_is_enabled(tiny_cfg, monkeypatch):
    from detectron2.engine import DefaultTrainer

    from wssdl_d2.engine import WSSDLTrainer

    seen = []
    monkeypatch.setattr(DefaultTrainer, "test", classmethod(lambda cls, cfg, model, evaluators=None: seen.append(model)))
    model = build_model(tiny_cfg())
    WSSDLTrainer.test(tiny_cfg(), model)
    WSSDLTrainer.test(tiny_cfg(**{"TEST.AUG.ENABLED": True}), model)
    assert seen[0] is model
    assert isinstance(seen[1], GeneralizedRCNNWithTTA) and seen[1].model is model


def test_a_seeded_model_starts_as_with_detectron2s_roi_heads(tiny_cfg):
    """WSSDLROIHeads draws no extra random numbers: the same seed gives StandardROIHeads's initial weights."""
    states = []
    for name in ("StandardROIHeads", "WSSDLROIHeads"):
        torch.manual_seed(0)
        states.append(build_model(tiny_cfg(**{"MODEL.ROI_HEADS.NAME": name})).state_dict())
        states[-1]["after"] = torch.rand(3)  # the random stream after building
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
