"""Mass-of-interest selection on hand-built score tensors (columns: benign, malignant, background)."""
import math

import pytest
import torch

from wssdl_d2.modeling.mass_of_interest import MOI_RULES, moi_ranking, select_mass_of_interest


def _logits_from_probs(probs):
    return torch.tensor(probs, dtype=torch.float64).log()


# rows are proposals; softmax(log p) = p, so "prob" selection sees exactly these probabilities
PROBS = [
    [0.10, 0.20, 0.70],  # 0: mostly background
    [0.60, 0.10, 0.30],  # 1: the most benign
    [0.05, 0.55, 0.40],  # 2: the most malignant
    [0.45, 0.40, 0.15],  # 3: the most abnormal (lowest background)
]


@pytest.mark.parametrize("rule, expected", [
    ("most_benign", 1), ("most_malignant", 2), ("most_discriminative", 1), ("most_abnormal", 3),
])
def test_rules_by_probability(rule, expected):
    assert int(select_mass_of_interest(_logits_from_probs(PROBS), rule, "prob")) == expected


def test_most_discriminative_takes_the_larger_of_benign_and_malignant():
    probs = [[0.30, 0.35, 0.35], [0.10, 0.62, 0.28], [0.61, 0.01, 0.38]]
    assert int(select_mass_of_interest(_logits_from_probs(probs), "most_discriminative", "prob")) == 1


def test_logit_selection_differs_from_probability_selection():
    # proposal 0 has the larger malignant logit, proposal 1 the larger malignant probability
    scores = torch.tensor([[5.0, 3.0, 0.0], [-2.0, 2.0, -2.0]])
    assert int(select_mass_of_interest(scores, "most_malignant", "logit")) == 0
    assert int(select_mass_of_interest(scores, "most_malignant", "prob")) == 1
    assert scores.softmax(1)[1, 1] > scores.softmax(1)[0, 1]
    # most abnormal by logit: the lowest background logit
    assert int(select_mass_of_interest(torch.tensor([[0.0, 0.0, 1.0], [9.0, 9.0, 0.5]]), "most_abnormal", "logit")) == 1


def test_ranking_values_and_ties():
    probs = _logits_from_probs(PROBS)
    ranking = moi_ranking(probs, "most_abnormal", "prob")
    assert ranking.tolist() == pytest.approx([-0.70, -0.30, -0.40, -0.15])
    tied = torch.zeros(3, 3)
    for rule in MOI_RULES:  # ties go to the first (highest-objectness) proposal
        assert int(select_mass_of_interest(tied, rule)) == 0


def test_single_proposal_and_bad_input():
    assert int(select_mass_of_interest(torch.tensor([[0.0, math.log(2), 0.0]]), "most_benign")) == 0
    with pytest.raises(ValueError, match="no proposals"):
        select_mass_of_interest(torch.zeros(0, 3), "most_malignant")
    with pytest.raises(ValueError, match="most_malignant"):
        select_mass_of_interest(torch.zeros(2, 3), "most_suspicious")
    with pytest.raises(ValueError, match="SELECT_BY"):
        select_mass_of_interest(torch.zeros(2, 3), "most_malignant", "rank")
    with pytest.raises(ValueError, match=r"\(R, K \+ 1\)"):
        select_mass_of_interest(torch.zeros(2, 2), "most_malignant")
