"""The image-level MIL loss against hand-computed cross-entropies, class weights, alpha, and targets."""
import math

import pytest
import torch
from detectron2.config import get_cfg

from wssdl_d2.config import add_wssdl_config
from wssdl_d2.modeling.mil_loss import (
    class_weights_from_config,
    image_label_to_class,
    inverse_frequency_weights,
    mil_loss,
)


def _log_softmax(row):
    m = max(row)
    z = sum(math.exp(v - m) for v in row)
    return [v - m - math.log(z) for v in row]


# columns: benign, malignant, background
MALIGNANT_IMAGE = [[0.0, 1.0, 2.0], [0.5, 3.0, 0.0], [2.0, 0.0, 0.0]]  # most malignant: row 1
BENIGN_IMAGE = [[1.0, 0.2, 0.1], [0.0, 0.5, 0.4]]  # most malignant: row 1 (p_M 0.39 vs 0.22)
NORMAL_IMAGE = [[0.0, 0.0, 3.0], [1.0, 1.0, 0.0], [0.0, 0.5, 1.0]]  # most abnormal: row 1


def _bags():
    return [torch.tensor(b, requires_grad=True) for b in (MALIGNANT_IMAGE, BENIGN_IMAGE, NORMAL_IMAGE)]


def test_targets():
    assert [image_label_to_class(y) for y in (0, 1, 2)] == [2, 0, 1]
    with pytest.raises(ValueError, match="image_label"):
        image_label_to_class(3)


def test_loss_equals_hand_computed_cross_entropy():
    loss, moi, _ = mil_loss(_bags(), [2, 1, 0], ["most_malignant", "most_malignant", "most_abnormal"])
    assert [int(i) for i in moi] == [1, 1, 1]
    expected = -(_log_softmax(MALIGNANT_IMAGE[1])[1] + _log_softmax(BENIGN_IMAGE[1])[0]
                 + _log_softmax(NORMAL_IMAGE[1])[2]) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_loss_with_class_weights():
    weights = [0.5, 0.2, 0.8]  # normal, benign, malignant
    loss, _, _ = mil_loss(_bags(), [2, 1, 0], ["most_malignant", "most_malignant", "most_abnormal"],
                       class_weights=weights)
    expected = -(0.8 * _log_softmax(MALIGNANT_IMAGE[1])[1] + 0.2 * _log_softmax(BENIGN_IMAGE[1])[0]
                 + 0.5 * _log_softmax(NORMAL_IMAGE[1])[2]) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_gradient_flows_through_the_moi_row_only():
    bags = _bags()
    loss, _, _ = mil_loss(bags, [2, 1, 0], ["most_malignant", "most_benign", "most_abnormal"])
    loss.backward()
    for bag, chosen in zip(bags, (1, 0, 1)):
        nonzero = bag.grad.abs().sum(1) > 0
        assert nonzero.tolist() == [i == chosen for i in range(len(bag))]


def test_logit_selection_changes_the_moi():
    scores = torch.tensor([[5.0, 3.0, 0.0], [-2.0, 2.0, -2.0]])
    loss_prob, moi_prob, _ = mil_loss([scores], [2], ["most_malignant"], "prob")
    loss_logit, moi_logit, _ = mil_loss([scores], [2], ["most_malignant"], "logit")
    assert (int(moi_prob[0]), int(moi_logit[0])) == (1, 0)
    assert loss_logit.item() == pytest.approx(-_log_softmax([5.0, 3.0, 0.0])[1])


def test_inverse_frequency_weights_match_the_authors_definition():
    # 3 benign, 1 malignant: r = 0.25 malignant fraction -> benign weight r, malignant 1 - r
    assert inverse_frequency_weights([1, 1, 1, 2], use_normal=False) == pytest.approx([0.0, 0.25, 0.75])
    assert inverse_frequency_weights([0, 1, 1, 2, 2, 2, 0, 0], use_normal=False) == pytest.approx([0.0, 0.6, 0.4])
    w = inverse_frequency_weights([0, 1, 1, 2, 2, 2, 2, 0])  # counts 2, 2, 4
    assert w == pytest.approx([0.4, 0.4, 0.2])
    with pytest.raises(ValueError):
        inverse_frequency_weights([0, 0], use_normal=False)


def test_class_weights_from_config():
    cfg = add_wssdl_config(get_cfg())
    assert class_weights_from_config(cfg) is None
    cfg.WSSDL.MIL.CLASS_WEIGHTING = "explicit"
    cfg.WSSDL.MIL.CLASS_WEIGHTS = [0.0, 1.0, 3.0]
    assert class_weights_from_config(cfg) == [0.0, 1.0, 3.0]
    cfg.WSSDL.MIL.CLASS_WEIGHTS = [1.0, 2.0]
    with pytest.raises(ValueError, match="CLASS_WEIGHTS"):
        class_weights_from_config(cfg)
    cfg.WSSDL.MIL.CLASS_WEIGHTING = "inverse_frequency"
    with pytest.raises(ValueError, match="weak images"):
        class_weights_from_config(cfg)
    cfg.WSSDL.MIL.USE_NORMAL = False
    assert class_weights_from_config(cfg, [1, 2, 2, 0]) == pytest.approx([0.0, 2 / 3, 1 / 3])
    cfg.WSSDL.MIL.CLASS_WEIGHTING = "focal"
    with pytest.raises(ValueError, match="CLASS_WEIGHTING"):
        class_weights_from_config(cfg)
