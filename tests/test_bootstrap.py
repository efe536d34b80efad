"""Bootstrap intervals, AUC (plain and on resamples), paired tests."""
import time

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from wssdl_d2.evaluation.bootstrap import (
    bootstrap_indices, bootstrap_p_value, mcnemar_exact, paired_bootstrap, percentile_interval, resample_counts,
    safe_divide,
)
from wssdl_d2.evaluation.diagnosis import confusion_matrix, roc_curve, weighted_auc


def _hits(n, rate, seed=0):
    return np.random.default_rng(seed).random(n) < rate


def ratio(numerator, denominator):
    """sum(numerator) / sum(denominator) over the last axis (NaN without a denominator), as metrics.estimate."""
    return safe_divide(np.sum(numerator, axis=-1, dtype=np.float64), np.sum(denominator, axis=-1, dtype=np.float64))


def bootstrap_ratio(numerator, denominator, indices=None, counts=None):
    """The ratio on every resample, through resample_counts as metrics.estimate computes it."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    counts = resample_counts(indices, len(numerator)) if counts is None else counts
    return safe_divide(counts @ numerator, counts @ denominator)


def ratio_with_ci(numerator, denominator, indices, level=0.95):
    point = float(ratio(np.asarray(numerator, float), np.asarray(denominator, float)))
    return (point, *percentile_interval(bootstrap_ratio(numerator, denominator, indices), level))


def test_indices_are_seeded_and_in_range():
    a, b = bootstrap_indices(50, 200, seed=3), bootstrap_indices(50, 200, seed=3)
    assert a.shape == (200, 50) and (a == b).all() and a.min() >= 0 and a.max() < 50
    assert not (a == bootstrap_indices(50, 200, seed=4)).all()
    with pytest.raises(ValueError, match="at least one image"):
        bootstrap_indices(0, 10)


def test_resample_counts_match_indices():
    idx = bootstrap_indices(7, 30, seed=0)
    counts = resample_counts(idx, 7)
    expected = np.stack([np.bincount(row, minlength=7) for row in idx])
    assert (counts == expected).all() and (counts.sum(axis=1) == 7).all()


def test_ci_contains_the_estimate_and_shrinks_with_more_images():
    widths = []
    for n in (40, 400, 4000):
        hits = _hits(n, 0.7, seed=n)
        point, lo, hi = ratio_with_ci(hits, np.ones(n), bootstrap_indices(n, 1000, seed=0))
        assert point == pytest.approx(hits.mean())
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0
    # ~ 2 * 1.96 * sqrt(p (1 - p) / n) for a proportion
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.21 / 4000), rel=0.15)


def test_ratio_ignores_images_outside_the_denominator_and_is_nan_without_any():
    num = np.array([1, 0, 1, 0])
    den = np.array([1, 1, 0, 0])
    assert ratio(num * den, den) == 0.5
    assert np.isnan(ratio(np.zeros(3), np.zeros(3)))
    samples = bootstrap_ratio(num * den, den, bootstrap_indices(4, 500, seed=0))
    assert np.isnan(samples).any() and np.nanmax(samples) == 1.0  # resamples without a denominator image
    idx = bootstrap_indices(4, 50, seed=1)
    gathered = ratio((num * den)[idx], den[idx])
    np.testing.assert_allclose(bootstrap_ratio(num * den, den, counts=resample_counts(idx, 4)), gathered)  # NaNs too
    assert percentile_interval([np.nan, np.nan]) != percentile_interval([0.0, 1.0])


def test_bootstrap_is_fast_enough():
    hits, mass = _hits(1000, 0.8), _hits(1000, 0.66, seed=1)
    start = time.perf_counter()
    ratio_with_ci(hits & mass, mass, bootstrap_indices(1000, 1000, seed=0))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"1000 resamples of 1000 images took {elapsed:.2f} s"


def test_auc_by_hand_and_against_mann_whitney():
    scores = np.array([0.9, 0.4, 0.4, 0.1, 0.7])
    pos = np.array([1, 1, 0, 0, 0], bool)
    neg = np.array([0, 0, 1, 1, 0], bool)  # the 0.7 image is in neither class: ignored
    assert weighted_auc(scores, pos, neg) == pytest.approx(3.5 / 4)
    rng = np.random.default_rng(0)
    s = np.round(rng.random(300), 2)  # many ties
    y = rng.random(300) < 0.4
    u = mannwhitneyu(s[y], s[~y]).statistic
    assert weighted_auc(s, y, ~y) == pytest.approx(u / (y.sum() * (~y).sum()))
    assert np.isnan(weighted_auc(s, y, np.zeros(300, bool)))


def test_auc_on_resamples_equals_the_auc_of_each_resample():
    rng = np.random.default_rng(1)
    s = np.round(rng.random(60), 1)
    y = rng.random(60) < 0.5
    idx = bootstrap_indices(60, 50, seed=2)
    fast = weighted_auc(s, y, ~y, resample_counts(idx, 60))
    for b in range(50):
        ys, ss = y[idx[b]], s[idx[b]]
        diff = ss[ys][:, None] - ss[~ys][None, :]
        assert fast[b] == pytest.approx(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_roc_curve_and_confusion_matrix():
    fpr, tpr, thr = roc_curve([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0], [0, 0, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.4, 0.1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.875)
    assert confusion_matrix([0, 1, 2, 2], [0, 2, 2, 0]).tolist() == [[1, 0, 0], [0, 0, 1], [1, 0, 1]]
    with pytest.raises(ValueError, match="labels must lie"):
        confusion_matrix([0, 3], [0, 0])


def test_paired_bootstrap_and_mcnemar():
    n = 200
    a = _hits(n, 0.6)
    idx = bootstrap_indices(n, 2000, seed=0)
    same = paired_bootstrap(bootstrap_ratio(a, np.ones(n), idx), bootstrap_ratio(a, np.ones(n), idx))
    assert same["p_value"] == 1.0 and same["ci"] == (0.0, 0.0)
    assert mcnemar_exact(a, a) == {"a_only": 0, "b_only": 0, "p_value": 1.0}
    b = a.copy()
    b[np.flatnonzero(a)[:30]] = False  # A right and B wrong on 30 images, never the reverse
    better = paired_bootstrap(bootstrap_ratio(a, np.ones(n), idx), bootstrap_ratio(b, np.ones(n), idx))
    assert better["p_value"] < 0.01 and better["ci"][0] > 0
    test = mcnemar_exact(a, b)
    assert test["a_only"] == 30 and test["b_only"] == 0 and test["p_value"] == pytest.approx(2 * 0.5 ** 30)
    # 8 vs 2 discordant: exact two-sided binomial p = 2 * P(X <= 2 | 10, 1/2) = 2 * 56 / 1024
    a2, b2 = np.r_[np.ones(8), np.zeros(2)].astype(bool), np.r_[np.zeros(8), np.ones(2)].astype(bool)
    assert mcnemar_exact(a2, b2)["p_value"] == pytest.approx(112 / 1024)
    assert bootstrap_p_value([1.0, 2.0, -1.0]) == pytest.approx(2 * 2 / 4)
