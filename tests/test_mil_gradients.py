"""Where the joint losses send gradients, and that the extension costs nothing at inference.

- a weak-only batch: exactly zero gradient to the RPN head, non-zero to the box head and the backbone;
- the StrongOnlyRPN's losses on a mixed batch equal the plain RPN's on the strong images alone;
- MILROIHeads on a strong-only batch equals StandardROIHeads;
- WSSDLRCNN at inference gives exactly GeneralizedRCNN's detections.
"""
import copy

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import ImageList
from detectron2.utils.events import EventStorage

from wssdl_d2.data.mapper import WSSDLDatasetMapper

MIL_MODEL = {"MODEL.META_ARCHITECTURE": "WSSDLRCNN", "MODEL.PROPOSAL_GENERATOR.NAME": "StrongOnlyRPN",
             "MODEL.ROI_HEADS.NAME": "MILROIHeads", "WSSDL.MIL.ALPHA.SCHEDULE": "static", "WSSDL.MIL.ALPHA.VALUE": 1.0}


@pytest.fixture
def mil_cfg(tiny_cfg):
    return tiny_cfg(**MIL_MODEL, **{"DATASETS.TRAIN": ("testphantom_train_strong_30", "testphantom_train_weak_30")})


def _batch(cfg, strong, weak):
    """Mapped training dicts: ``strong`` strong images with a box, then ``weak`` weak images (benign/malignant)."""
    torch.manual_seed(0)
    mapper = WSSDLDatasetMapper(cfg, is_train=True)
    strong_dicts = [d for d in DatasetCatalog.get("testphantom_train_strong_30") if d["annotations"]][:strong]
    weak_dicts = [d for d in DatasetCatalog.get("testphantom_train_weak_30") if d["image_label"] > 0][:weak]
    assert len(strong_dicts) == strong and len(weak_dicts) == weak
    return [mapper(d) for d in strong_dicts + weak_dicts]


def _grads(model, batch):
    model.train()
    model.zero_grad()
    with EventStorage():
        losses = model(batch)
    sum(losses.values()).backward()
    return losses, {n: (p.grad.abs().sum().item() if p.grad is not None else None) for n, p in model.named_parameters()}


def test_weak_only_batch_gives_zero_rpn_gradient(mil_cfg):
    model = build_model(mil_cfg)
    losses, grads = _grads(model, _batch(mil_cfg, 0, 2))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mil"}
    assert losses["loss_mil"].item() > 0
    assert losses["loss_rpn_cls"].item() == 0 and losses["loss_box_reg"].item() == 0
    rpn = {n: g for n, g in grads.items() if n.startswith("proposal_generator.")}
    assert rpn and all(g == 0 for g in rpn.values())  # in the graph, exactly zero
    assert grads["roi_heads.box_predictor.cls_score.weight"] > 0
    assert grads["roi_heads.box_head.fc1.weight"] > 0
    assert grads["roi_heads.box_predictor.bbox_pred.weight"] == 0  # no box regression from weak images
    assert sum(g for n, g in grads.items() if n.startswith("backbone.")) > 0


def test_mixed_batch_trains_everything(mil_cfg):
    model = build_model(mil_cfg)
    losses, grads = _grads(model, _batch(mil_cfg, 1, 2))
    assert all(v.item() > 0 for v in losses.values())
    assert grads["proposal_generator.rpn_head.objectness_logits.weight"] > 0
    assert grads["roi_heads.box_predictor.bbox_pred.weight"] > 0


def test_strong_only_rpn_losses_ignore_weak_images(mil_cfg):
    model = build_model(mil_cfg)
    batch = _batch(mil_cfg, 2, 1)
    rpn = model.proposal_generator.train()
    plain = RPN(**RPN.from_config(mil_cfg, model.backbone.output_shape())).train()
    plain.load_state_dict(rpn.state_dict())
    images = model.preprocess_image(batch)
    torch.manual_seed(1)
    features = {f: torch.randn(3, 32, images.tensor.shape[-2] // s, images.tensor.shape[-1] // s)
                for f, s in zip(("p3", "p4", "p5", "p6"), (8, 16, 32, 64))}
    gt = [x["instances"] for x in batch]
    with EventStorage():
        torch.manual_seed(2)
        _, mixed = rpn(images, features, gt, strong=[True, True, False])
        torch.manual_seed(2)
        strong_images = ImageList(images.tensor[:2], images.image_sizes[:2])
        _, alone = plain(strong_images, {f: v[:2] for f, v in features.items()}, gt[:2])
    assert set(mixed) == set(alone)
    for key in mixed:
        assert mixed[key].item() == pytest.approx(alone[key].item(), rel=1e-5), key


def test_strong_only_batch_equals_standard_roi_heads(mil_cfg, tiny_cfg):
    model = build_model(mil_cfg)
    plain = build_model(tiny_cfg())
    plain.load_state_dict(model.state_dict())
    batch = _batch(mil_cfg, 2, 0)
    out = {}
    for name, m in (("mil", model), ("plain", plain)):
        m.train()
        torch.manual_seed(3)
        with EventStorage():
            out[name] = m(copy.deepcopy(batch))
    assert out["mil"].pop("loss_mil").item() == 0
    for key in out["plain"]:
        assert out["mil"][key].item() == pytest.approx(out["plain"][key].item(), rel=1e-5), key


def test_inference_is_plain_generalized_rcnn(mil_cfg, tiny_cfg):
    model = build_model(mil_cfg).eval()
    plain = build_model(tiny_cfg(**{"MODEL.ROI_HEADS.NAME": "StandardROIHeads"})).eval()  # Detectron2's own heads
    plain.load_state_dict(model.state_dict())
    assert type(plain).__name__ == "GeneralizedRCNN" and type(plain.roi_heads).__name__ == "StandardROIHeads"
    batch = [{"image": x["image"], "height": 96, "width": 128} for x in _batch(mil_cfg, 1, 1)]
    with torch.no_grad():
        a, b = model(batch), plain(batch)
    for x, y in zip(a, b):
        x, y = x["instances"], y["instances"]
        assert len(x) == len(y)
        assert torch.equal(x.pred_boxes.tensor, y.pred_boxes.tensor) and torch.equal(x.scores, y.scores)


def test_bad_configurations_are_refused(tiny_cfg):
    with pytest.raises(ValueError, match="StrongOnlyRPN"):
        build_model(tiny_cfg(**{**MIL_MODEL, "MODEL.PROPOSAL_GENERATOR.NAME": "RPN"}))
    with pytest.raises(ValueError, match="MOI_BENIGN"):
        build_model(tiny_cfg(**{**MIL_MODEL, "WSSDL.MIL.MOI_BENIGN": "largest"}))
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        build_model(tiny_cfg(**{**MIL_MODEL, "MODEL.ROI_HEADS.NUM_CLASSES": 3}))


def test_joint_path_gives_standard_losses_on_strong_images(mil_cfg, tiny_cfg):
    """With weak images in the batch, loss_cls / loss_box_reg are the StandardROIHeads losses of the strong
    images alone, and loss_mil is alpha times the MIL loss of the weak images' bags."""
    from detectron2.modeling.roi_heads import StandardROIHeads

    from wssdl_d2.modeling.mil_loss import mil_loss

    model = build_model(mil_cfg).train()
    heads = model.roi_heads
    heads.mil_alpha = 0.25
    plain = StandardROIHeads(**StandardROIHeads.from_config(tiny_cfg(), model.backbone.output_shape())).train()
    plain.load_state_dict(heads.state_dict())
    batch = _batch(mil_cfg, 2, 2)
    images = model.preprocess_image(batch)
    gt = [x["instances"] for x in batch]
    with EventStorage():
        with torch.no_grad():
            features = model.backbone(images.tensor)
            proposals, _ = model.proposal_generator(images, features, gt, strong=[True, True, False, False])
        torch.manual_seed(4)
        _, joint = heads(images, features, proposals, gt, strong=[True, True, False, False], image_labels=[1, 2, 1, 2])
        torch.manual_seed(4)
        _, alone = plain(ImageList(images.tensor[:2], images.image_sizes[:2]), {k: v[:2] for k, v in features.items()},
                         proposals[:2], gt[:2])
        with torch.no_grad():
            weak_scores = [heads.box_predictor(heads.box_head(heads.box_pooler(
                [features[f][i:i + 1] for f in heads.box_in_features], [proposals[i].proposal_boxes])))[0]
                for i in (2, 3)]
            expected_mil = mil_loss(weak_scores, [1, 2], ["most_malignant", "most_malignant"]).loss
    for key in ("loss_cls", "loss_box_reg"):
        assert joint[key].item() == pytest.approx(alone[key].item(), rel=1e-4), key
    assert joint["loss_mil"].item() == pytest.approx(0.25 * expected_mil.item(), rel=1e-4)


def test_moi_recomputation_gives_the_full_bag_gradients(mil_cfg, monkeypatch):
    """Scoring the bags without autograd and recomputing the MoI rows gives the same loss_mil and gradients
    as back-propagating through every box of the bags (the path taken by heads with BatchNorm)."""
    model = build_model(mil_cfg).train()
    batch = _batch(mil_cfg, 1, 2)
    results = []
    for independent in (True, False):
        monkeypatch.setattr(type(model.roi_heads), "_rows_are_independent", lambda self, v=independent: v)
        model.zero_grad()
        torch.manual_seed(5)
        with EventStorage():
            losses = model(copy.deepcopy(batch))
        losses["loss_mil"].backward()
        results.append((losses["loss_mil"].item(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                    if p.grad is not None and n.startswith(("roi_heads", "backbone"))}))
    (fast_loss, fast), (full_loss, full) = results
    assert fast_loss == pytest.approx(full_loss, rel=1e-5) and fast_loss > 0
    assert fast.keys() == full.keys() and fast
    for name in fast:
        torch.testing.assert_close(fast[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_batchnorm_box_heads_back_propagate_through_the_whole_bag(tiny_cfg):
    plain_head = build_model(tiny_cfg(**MIL_MODEL)).train()
    bn_head = build_model(tiny_cfg(**MIL_MODEL, **{"MODEL.ROI_BOX_HEAD.NUM_CONV": 1, "MODEL.ROI_BOX_HEAD.CONV_DIM": 16,
                                                   "MODEL.ROI_BOX_HEAD.NORM": "BN"})).train()
    assert plain_head.roi_heads._rows_are_independent()
    assert not bn_head.roi_heads._rows_are_independent()


def test_inverse_frequency_heads_train_outside_the_trainer_once_weights_are_set(mil_cfg):
    from wssdl_d2.modeling.mil_loss import class_weights_from_config

    cfg = mil_cfg.clone()
    cfg.defrost()
    cfg.WSSDL.MIL.CLASS_WEIGHTING = "inverse_frequency"
    model = build_model(cfg)
    batch = _batch(cfg, 1, 2)
    model.train()
    with EventStorage(), pytest.raises(RuntimeError, match="set_class_weights"):
        model(batch)
    weak_labels = [d["image_label"] for d in DatasetCatalog.get("testphantom_train_weak_30")]
    model.roi_heads.set_class_weights(class_weights_from_config(cfg, weak_labels))
    with EventStorage():
        losses = model(batch)
    assert losses["loss_mil"].item() > 0
    with pytest.raises(ValueError, match="3 non-negative"):
        model.roi_heads.set_class_weights([1.0, 2.0])
