"""Mass-of-interest (MoI) selection: the one proposal that represents a weakly labelled image.

Scores follow Detectron2's Fast R-CNN layout: ``(R, K + 1)`` class logits per proposal, foreground classes
``0 .. K - 1`` (here 0 benign, 1 malignant) and background last (index K).

Rules (the paper's section on MIL, one per image label, see ``cfg.WSSDL.MIL.MOI_*``):

- ``most_malignant``: argmax_n p_malignant(x_n)
- ``most_benign``: argmax_n p_benign(x_n)
- ``most_discriminative``: argmax_n max(p_benign(x_n), p_malignant(x_n))
- ``most_abnormal``: argmin_n p_background(x_n)

``select_by="prob"`` ranks softmax probabilities (the paper); ``"logit"`` ranks the raw class logits (the
authors' code). The two differ because a softmax couples the classes.
"""
from typing import Dict, Sequence, TypeVar

import torch

from ..data.labels import BENIGN, BENIGN_CLASS, MALIGNANT, MALIGNANT_CLASS, NORMAL

MOI_RULES = ("most_malignant", "most_benign", "most_discriminative", "most_abnormal")
SELECT_BY = ("prob", "logit")
#: The config key of each image label's rule.
MOI_RULE_KEYS = {NORMAL: "WSSDL.MIL.MOI_NORMAL", BENIGN: "WSSDL.MIL.MOI_BENIGN", MALIGNANT: "WSSDL.MIL.MOI_MALIGNANT"}

_Bag = TypeVar("_Bag", bound=Sequence)


def check_moi_rule(rule: str, key: str = "WSSDL.MIL.MOI_*") -> str:
    """Return ``rule`` if known, else raise ValueError naming the config key."""
    if rule not in MOI_RULES:
        raise ValueError(f"{key} must be one of {MOI_RULES}, not {rule!r}")
    return rule


def moi_rules_from_config(cfg) -> Dict[int, str]:
    """{image label: MoI rule} of ``cfg.WSSDL.MIL.MOI_*`` (0 normal, 1 benign, 2 malignant), each checked."""
    mil = cfg.WSSDL.MIL
    values = {NORMAL: mil.MOI_NORMAL, BENIGN: mil.MOI_BENIGN, MALIGNANT: mil.MOI_MALIGNANT}
    return {label: check_moi_rule(values[label], key) for label, key in MOI_RULE_KEYS.items()}


def mil_bag(proposals: _Bag, max_proposals: int) -> _Bag:
    """The proposals of an image that enter its MIL bag: the first ``max_proposals`` (``WSSDL.MIL.MAX_PROPOSALS``;
    proposals arrive sorted by objectness), all of them when ``max_proposals`` is 0. ``proposals``: anything
    sliceable along its first axis (``Boxes``, an ``(R, K + 1)`` score tensor, ...)."""
    return proposals[:max_proposals] if max_proposals > 0 else proposals


def moi_ranking(scores: torch.Tensor, rule: str, select_by: str = "prob") -> torch.Tensor:
    """Per-proposal ranking value ``(R,)`` whose argmax is the MoI under ``rule``.

    Args:
        scores: ``(R, K + 1)`` class logits, background last; K >= 2.
        rule: one of :data:`MOI_RULES`.
        select_by: ``"prob"`` or ``"logit"``.
    """
    if scores.dim() != 2 or scores.shape[1] < 3:
        raise ValueError(f"scores must be (R, K + 1) with K >= 2 foreground classes, not {tuple(scores.shape)}")
    if select_by == "prob":
        values = scores.softmax(dim=1)
    elif select_by == "logit":
        values = scores
    else:
        raise ValueError(f"WSSDL.MIL.SELECT_BY must be one of {SELECT_BY}, not {select_by!r}")
    if rule == "most_malignant":
        return values[:, MALIGNANT_CLASS]
    if rule == "most_benign":
        return values[:, BENIGN_CLASS]
    if rule == "most_discriminative":
        return torch.maximum(values[:, BENIGN_CLASS], values[:, MALIGNANT_CLASS])
    if rule == "most_abnormal":
        return -values[:, -1]
    raise ValueError(f"unknown mass-of-interest rule {rule!r}; expected one of {MOI_RULES}")


@torch.no_grad()
def select_mass_of_interest(scores: torch.Tensor, rule: str, select_by: str = "prob") -> torch.Tensor:
    """Index (a 0-dim long tensor) of the MoI among the ``R >= 1`` proposals of one image.

    ``scores``: ``(R, K + 1)`` class logits, background last. Ties go to the first (highest-objectness) proposal,
    since proposals arrive sorted by objectness.
    """
    if scores.shape[0] == 0:
        raise ValueError("select_mass_of_interest: the image has no proposals")
    return moi_ranking(scores, rule, select_by).argmax()
