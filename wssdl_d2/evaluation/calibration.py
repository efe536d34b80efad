"""Calibration of the image-level malignancy score into a probability of malignancy.

What is calibrated. The score is an image's ``malignancy_score`` (:mod:`.outcomes`): the highest score among its
malignant-class detections, 0 when it has none. The calibrated value estimates **P(malignant | image)**, the
probability that an image of the population the calibration was fitted on carries a malignant lesion
(``image_label`` 2):

- population ``all`` (default): every image, normal ones included, with the case mix of the data (BUSI: about a
  quarter malignant), so the probability is only valid for scans drawn like BUSI's, not for a screening
  population with a lower prevalence;
- population ``mass``: only images with a lesion (benign or malignant): P(malignant | image with a mass).

Methods (fitted on out-of-fold per-image predictions of a cross-validation, each image scored by the model that
did not train on it):

- ``platt``: logistic regression on the score's logit, ``p = sigmoid(a * logit(s) + b)`` for ``s > 0``, with its
  own probability ``sigmoid(c)`` for images without a malignant detection (``s == 0``, whose logit is -inf);
  ``a`` has an L2 penalty of :data:`PLATT_L2` so that separable data gives a finite fit;
- ``isotonic``: the monotone non-decreasing step function of the score closest to the labels in squared error
  (pool-adjacent-violators, :func:`pav`), linearly interpolated between its steps and kept within
  ``[1 / (2 (n + 1)), 1 - 1 / (2 (n + 1))]`` (n images fitted), so no image is called certain.

Choosing and judging. Each method is *cross-fitted*: the images of fold k are calibrated by a fit on the other
folds; its log-loss, Brier score and expected calibration error (ECE) on those predictions are the honest numbers,
and the method with the lowest cross-fitted log-loss is chosen (``method auto``), then refitted on all images.

ECE: :data:`ECE_BINS` equal-width bins of the predicted probability on [0, 1] (the last bin includes 1), ``ECE =
sum_k n_k / N * |mean(y)_k - mean(p)_k|`` over the non-empty bins; "uncalibrated" takes the raw score itself as the
probability.

A :class:`Calibration` is a post-hoc score rule (:mod:`.score_rule`: fit, cross_fit, save, load), as a site's
threshold is (:mod:`.site_threshold`).
"""
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Mapping, Optional

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from ..data.labels import BENIGN, MALIGNANT, NORMAL
from .score_rule import ScoreRule, held_out, refuse_existing

METHODS = ("platt", "isotonic")
POPULATIONS = ("all", "mass")
ECE_BINS = 10
PLATT_L2 = 1e-3
SCORE_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before their logit
CALIBRATION_FORMAT = 1
TARGETS = {
    "all": "P(malignant | image): the probability that the image shows a malignant lesion, among all images "
           "(normal ones included) with the case mix of the calibration data",
    "mass": "P(malignant | image with a mass): the probability that the lesion is malignant, among images with a "
            "lesion (benign or malignant)",
}


# ----------------------------------------------------------------------------------------------------- fitting


def pav(y: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing sequence closest to ``y`` (N,) in weighted squared error.

    Args:
        y: (N,) values in the order of the (sorted) predictor. weights: (N,) positive weights (default ones).
    Returns:
        (N,) float64 fitted values (constant over each pooled block).
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    means, sizes, counts = [], [], []
    for value, weight in zip(y, w):
        means.append(value)
        sizes.append(weight)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:  # merge the last two blocks while they violate the order
            m2, s2, c2 = means.pop(), sizes.pop(), counts.pop()
            means[-1] = (means[-1] * sizes[-1] + m2 * s2) / (sizes[-1] + s2)
            sizes[-1] += s2
            counts[-1] += c2
    return np.repeat(means, counts)


def fit_isotonic(scores: np.ndarray, y: np.ndarray) -> Dict[str, Any]:
    """Isotonic calibration parameters: ``{"x": [...], "y": [...], "clip": eps}``, the fitted step function as
    points for ``np.interp`` (each step's lowest and highest score), from scores (N,) and 0/1 labels (N,)."""
    scores, y = np.asarray(scores, np.float64), np.asarray(y, np.float64)
    values, inverse = np.unique(scores, return_inverse=True)  # equal scores must get one value: pool them first
    totals = np.bincount(inverse, weights=y, minlength=len(values))
    counts = np.bincount(inverse, minlength=len(values)).astype(np.float64)
    fitted = pav(totals / counts, counts)
    xs, ys = [], []
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    ends = np.r_[starts[1:], len(values)] - 1
    for start, end in zip(starts, ends):
        xs += [float(values[start]), float(values[end])]
        ys += [float(fitted[start])] * 2
    return {"x": xs, "y": ys, "clip": 1.0 / (2 * (len(scores) + 1))}


def _logit_scores(scores: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(scores, np.float64), SCORE_EPS, 1 - SCORE_EPS))


def _smoothed_rate(y: np.ndarray) -> float:
    return (float(np.sum(y)) + 0.5) / (len(y) + 1.0)


def fit_platt(scores: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    """Platt parameters ``{"a", "b", "c"}`` (see the module docstring) from scores (N,) and 0/1 labels (N,):
    ``a, b`` by penalised maximum likelihood on the images with ``s > 0``; ``sigmoid(c)`` the malignant rate of the
    images with ``s == 0``, smoothed as (k + 0.5) / (n + 1)."""
    scores, y = np.asarray(scores, np.float64), np.asarray(y, np.float64)
    zero = scores <= 0
    c = float(logit(_smoothed_rate(y[zero]) if zero.any() else _smoothed_rate(y)))
    x, t = _logit_scores(scores[~zero]), y[~zero]
    if len(x) == 0:
        return {"a": 0.0, "b": c, "c": c}

    def loss(theta):
        z = theta[0] * x + theta[1]
        # mean negative log-likelihood, written with logaddexp for stability: log(1 + e^z) - t z
        value = np.mean(np.logaddexp(0.0, z) - t * z) + PLATT_L2 * theta[0] ** 2
        p = expit(z)
        grad = np.array([np.mean((p - t) * x) + 2 * PLATT_L2 * theta[0], np.mean(p - t)])
        return value, grad

    start = np.array([1.0, 0.0])
    result = minimize(loss, start, jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    return {"a": a, "b": b, "c": c}


FITTERS = {"platt": fit_platt, "isotonic": fit_isotonic}


#: The parameters each method needs in a saved calibration.
NEEDED_PARAMETERS = {"platt": ("a", "b", "c"), "isotonic": ("x", "y", "clip"), "identity": ()}


@dataclass
class Calibration(ScoreRule):
    """A fitted calibration (a :class:`~.score_rule.ScoreRule`): ``method`` ("platt", "isotonic" or "identity")
    and its ``parameters``; call it on malignancy scores (any shape, in [0, 1]) to get calibrated probabilities
    (same shape, float64)."""

    WHAT: ClassVar[str] = "calibration"
    FORMAT: ClassVar[int] = CALIBRATION_FORMAT

    method: str
    parameters: Dict[str, Any] = field(default_factory=dict)
    target: str = ""

    @classmethod
    def fit(cls, scores, labels, method: str = "platt") -> "Calibration":
        """Fit ``method`` ("platt" / "isotonic") on scores (N,) and 0/1 labels (N,) (1: malignant)."""
        if method not in FITTERS:
            raise ValueError(f"calibration method must be one of {METHODS}, not {method!r}")
        return cls(method, FITTERS[method](np.asarray(scores), np.asarray(labels)))

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "identity":
            return np.clip(s, 0.0, 1.0)
        if self.method == "platt":
            p = self.parameters
            return np.where(s > 0, expit(p["a"] * _logit_scores(s) + p["b"]), expit(p["c"]))
        if self.method == "isotonic":
            p = self.parameters
            return np.clip(np.interp(s, p["x"], p["y"]), p["clip"], 1 - p["clip"])
        raise ValueError(f"unknown calibration method {self.method!r} (one of {METHODS + ('identity',)})")

    def to_json(self) -> Dict[str, Any]:
        return {"method": self.method, "parameters": self.parameters, "target": self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> "Calibration":
        """Only ``method``, ``parameters`` and ``target`` are read; ValueError naming ``path`` for parameters the
        method cannot use or that give non-finite probabilities."""
        method, parameters = data.get("method"), data.get("parameters")
        if (method not in NEEDED_PARAMETERS or not isinstance(parameters, dict)
                or any(k not in parameters for k in NEEDED_PARAMETERS[method])):
            raise ValueError(f"calibration file {path}: method {method!r} with parameters "
                             f"{sorted(parameters) if isinstance(parameters, dict) else parameters!r} is not usable")
        if method == "isotonic":
            x, y = np.asarray(parameters["x"], float), np.asarray(parameters["y"], float)
            if len(x) == 0 or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
                raise ValueError(f"calibration file {path}: isotonic x / y must be non-decreasing and of equal length")
        calibration = cls(method, parameters, data.get("target", ""))
        probe = calibration(np.linspace(0, 1, 11))
        if not np.all(np.isfinite(probe)):
            raise ValueError(f"calibration file {path}: its parameters give non-finite probabilities")
        return calibration


def fit_calibration(scores: np.ndarray, y: np.ndarray, method: str) -> Calibration:
    """Fit ``method`` ("platt" / "isotonic") on scores (N,) and 0/1 labels (N,) (:meth:`Calibration.fit`)."""
    return Calibration.fit(scores, y, method)


# ----------------------------------------------------------------------------------------------------- metrics


def log_loss(p: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (nats) of 0/1 labels ``y`` (N,) under probabilities ``p`` (N,) (clipped to
    [eps, 1 - eps])."""
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    y = np.asarray(y, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared difference between probabilities (N,) and 0/1 labels (N,)."""
    return float(np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2))


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> Dict[str, list]:
    """Equal-width bins of the probability on [0, 1] (the last includes 1): per bin ``lo``, ``hi``, ``count``,
    ``mean_p`` (mean predicted probability) and ``frac_pos`` (observed rate of y = 1); NaN means for empty bins."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / count
        frac_pos = np.bincount(index, weights=y, minlength=bins) / count
    edges = np.linspace(0, 1, bins + 1)
    return {"lo": edges[:-1].tolist(), "hi": edges[1:].tolist(), "count": count.tolist(),
            "mean_p": [None if math.isnan(v) else float(v) for v in mean_p],
            "frac_pos": [None if math.isnan(v) else float(v) for v in frac_pos]}


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with ``bins`` equal-width bins (see the module docstring), in [0, 1]."""
    table = reliability_bins(p, y, bins)
    n = float(np.sum(table["count"]))
    return float(sum(c / n * abs(f - m) for c, f, m in zip(table["count"], table["frac_pos"], table["mean_p"]) if c))


def scores_of(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> Dict[str, float]:
    """``{"log_loss", "brier", "ece"}`` of probabilities (N,) for 0/1 labels (N,)."""
    return {"log_loss": log_loss(p, y), "brier": brier(p, y), "ece": expected_calibration_error(p, y, bins)}


def cross_fitted(scores: np.ndarray, y: np.ndarray, folds: np.ndarray, method: str) -> np.ndarray:
    """Probabilities (N,) where each fold's images are calibrated by ``method`` fitted on the other folds
    (:meth:`Calibration.cross_fit`)."""
    scores = np.asarray(scores)
    rules = Calibration.cross_fit(scores, y, folds, method=method)
    return held_out(rules, folds, lambda calibration, held: calibration(scores[held]))


# ------------------------------------------------------------------------------------------- from a crossval


def calibration_data(pooled: Mapping[str, np.ndarray], population: str = "all") -> Dict[str, np.ndarray]:
    """``{"scores", "y", "folds"}`` (N,) of pooled out-of-fold outcomes (:func:`wssdl_d2.evaluation.pooled.pool_folds`:
    ``malignancy_score``, ``image_label``, ``fold``) for ``population`` "all" or "mass" (see the module docstring)."""
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, not {population!r}")
    label = np.asarray(pooled["image_label"])
    keep = np.ones(len(label), bool) if population == "all" else np.isin(label, (BENIGN, MALIGNANT))
    return {"scores": np.asarray(pooled["malignancy_score"], np.float64)[keep],
            "y": (label[keep] == MALIGNANT).astype(np.float64), "folds": np.asarray(pooled["fold"])[keep],
            "labels": label[keep]}


def calibrate(pooled: Mapping[str, np.ndarray], population: str = "all", method: str = "auto",
              bins: int = ECE_BINS) -> Dict[str, Any]:
    """Fit the calibration of ``pooled`` out-of-fold outcomes and judge it (see the module docstring).

    Args:
        pooled: columns (N,) with ``malignancy_score``, ``image_label``, ``fold`` (at least two folds).
        population: "all" or "mass". method: "auto" (lowest cross-fitted log-loss), "platt" or "isotonic".
        bins: ECE / reliability bins.
    Returns:
        the calibration report (what :func:`write_calibration` saves and :func:`load_calibration` reads): ``method``
        and ``parameters`` (fitted on all images), ``target``, ``population``, ``uncalibrated`` and per method
        ``cross_fitted`` / ``in_sample`` {log_loss, brier, ece}, ``reliability`` bins, ``data`` counts.
    """
    data = calibration_data(pooled, population)
    scores, y, folds = data["scores"], data["y"], data["folds"]
    if len(np.unique(folds)) < 2:
        raise ValueError("calibration needs the out-of-fold predictions of at least two folds")
    if y.min() == y.max():
        raise ValueError(f"calibration needs malignant and other images; all {len(y)} images have y = {y[0]:.0f}")
    report = {"format": CALIBRATION_FORMAT, "target": TARGETS[population], "population": population,
              "score": "malignancy_score: the highest malignant-class detection score of the image, 0 without one",
              "ece_bins": {"count": bins, "kind": "equal-width bins of the probability on [0, 1]"},
              "uncalibrated": scores_of(np.clip(scores, 0, 1), y, bins),
              "reliability": {"uncalibrated": reliability_bins(np.clip(scores, 0, 1), y, bins)}, "methods": {}}
    for name in METHODS:
        held_out = cross_fitted(scores, y, folds, name)
        full = fit_calibration(scores, y, name)
        report["methods"][name] = {"parameters": full.parameters, "cross_fitted": scores_of(held_out, y, bins),
                                   "in_sample": scores_of(full(scores), y, bins)}
        report["reliability"][name] = reliability_bins(held_out, y, bins)
    chosen = (min(METHODS, key=lambda m: report["methods"][m]["cross_fitted"]["log_loss"]) if method == "auto"
              else method)
    if chosen not in METHODS:
        raise ValueError(f"calibration method must be 'auto' or one of {METHODS}, not {method!r}")
    report.update(method=chosen, chosen_by="lowest cross-fitted log-loss" if method == "auto" else "given",
                  parameters=report["methods"][chosen]["parameters"])
    labels = data["labels"]
    report["data"] = {"images": int(len(y)), "folds": int(len(np.unique(folds))), "malignant": int(y.sum()),
                      "benign": int(np.sum(labels == BENIGN)), "normal": int(np.sum(labels == NORMAL)),
                      "prevalence": float(y.mean()), "without_malignant_detection": int(np.sum(scores <= 0))}
    return report


# ---------------------------------------------------------------------------------------------------- files


def write_calibration(report: Mapping[str, Any], out_dir: str, overwrite: bool = False) -> Dict[str, str]:
    """Write ``calibration.json`` and ``reliability.png`` into ``out_dir``; FileExistsError if either exists and
    not ``overwrite``. Returns {"json": path, "png": path}."""
    paths = {"json": os.path.join(out_dir, "calibration.json"), "png": os.path.join(out_dir, "reliability.png")}
    refuse_existing(paths.values(), overwrite)
    rule = Calibration(report["method"], report["parameters"], report["target"])
    rule.save(paths["json"], extra={k: v for k, v in report.items() if k != "format"})
    plot_reliability(report, paths["png"])
    return paths


def plot_reliability(report: Mapping[str, Any], path: str) -> str:
    """Reliability diagram PNG: observed malignant rate vs mean predicted probability per bin, uncalibrated and
    each method (cross-fitted), with the ECE in the legend; bin counts below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 6.0), dpi=110, layout="constrained")
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    names = ["uncalibrated", *report["methods"]]
    for k, name in enumerate(names):
        table = report["reliability"][name]
        points = [(m, f) for m, f in zip(table["mean_p"], table["frac_pos"]) if m is not None]
        ece = (report["uncalibrated"] if name == "uncalibrated" else report["methods"][name]["cross_fitted"])["ece"]
        label = f"{name} (ECE {ece:.3f})" + (" [chosen]" if name == report.get("method") else "")
        top.plot(*zip(*points), marker="o", label=label)
        centers = (np.asarray(table["lo"]) + np.asarray(table["hi"])) / 2
        width = (table["hi"][0] - table["lo"][0]) / (len(names) + 1)
        bottom.bar(centers + (k - (len(names) - 1) / 2) * width, table["count"], width=width, label=name)
    top.set_ylabel("observed malignant rate")
    top.set_title(f"Reliability ({report['population']} images, {report['data']['images']}; "
                  f"{report['ece_bins']['count']} equal-width bins; methods cross-fitted)", fontsize=9)
    top.legend(fontsize=8, loc="upper left")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    bottom.set_xlabel("predicted probability of malignancy")
    bottom.set_ylabel("images")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=fig.dpi)
    return path


def load_calibration(path: str) -> Calibration:
    """The :class:`Calibration` of a ``calibration.json`` (:meth:`Calibration.load`: only ``method``,
    ``parameters`` and ``target`` are read); ValueError naming the file for anything else."""
    return Calibration.load(path)


def pooled_crossval(crossval_dir: str, config: str) -> Dict[str, np.ndarray]:
    """The pooled out-of-fold outcomes of one config of a cross-validation folder:
    ``<crossval_dir>/<config>/fold<k>/inference/corloc_per_image.csv`` for every evaluated fold k."""
    from .pooled import pool_folds
    from .results_io import ResultsError, read_per_image
    from .run_dir import RunDir, fold_dirs

    folder = os.path.join(crossval_dir, config)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such cross-validation run folder")
    folds = {fold: read_per_image(RunDir(path).inference) for fold, path in fold_dirs(folder).items()
             if RunDir(path).is_evaluated()}
    if len(folds) < 2:
        raise ResultsError(f"{folder}: {len(folds)} evaluated fold(s) (fold<k>/inference/corloc_per_image.csv); "
                           "calibration needs the out-of-fold predictions of at least two")
    return pool_folds(folds, name=folder)
