"""A site's detection score threshold fitted from its image labels alone.

Why. On a new scanner a BUSI-trained detector often still puts its best box on the lesion but scores it below the
threshold ``tau`` = 0.5 (``WSSDL.EVAL.SCORE_THRESH``): top-1 CorLoc stays up while CorLoc at ``tau`` falls. A site
has diagnoses (normal / benign / malignant) for its scans long before it has outlines, so the threshold is refitted
from those alone: no box of the site is used.

The score. An image's *abnormality score* ``s`` is its highest detection score, 0 without a detection
(``abnormality_score`` of :mod:`.outcomes`); "the image is called abnormal at t" means ``s >= t``. The site's
*abnormal rate* ``r`` is the fraction of its images labelled benign or malignant.

Rules (``t`` the site threshold, fitted on N images with scores ``s_i``):

- ``rate`` (default): the call rate matches the label rate. ``t`` is the ``ceil(r N)``-th highest score, the
  highest threshold at which at least a fraction ``r`` of the images has a detection ``>= t``.
- ``prior_shift``: the score is read as P(abnormal | image) and shifted by a site-level constant on the logit scale
  (a change of prior odds), ``p_i = sigmoid(logit(s_i) + b)`` (``p_i = 0`` for ``s_i = 0``), with ``b`` chosen so
  that the mean of ``p_i`` equals ``r``; ``t = sigmoid(-b)``, the score whose shifted probability is 0.5.

When no threshold reaches the rate (fewer than ``r N`` images have a detection at all) ``t`` is the lowest
detection score, every detection counts, and the fit says ``reachable: False``. A site without an abnormal image
has nothing to match (its rate is 0): that is an error, as is a site without any detection.

Cross-fitting. To measure a rule honestly on a site whose images are split into folds (by patient), the images of
fold k are thresholded at the ``t`` fitted on the other folds' scores and labels only (:func:`cross_fit`): fold k's
labels never reach its own threshold. The threshold to deploy is the fit on all of the site's images
(``deploy`` in ``site_threshold.json``); apply it as ``WSSDL.EVAL.SCORE_THRESH t`` (the evaluator's and
``tools/demo.py``'s threshold), as ``tools/demo.py --site-threshold site_threshold.json``, or read it with
:func:`load_site_threshold`. A :class:`SiteThreshold` is a post-hoc score rule (:mod:`.score_rule`: fit, cross_fit,
save, load), as a :class:`~.calibration.Calibration` is.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from ..data.labels import NORMAL
from .bootstrap import bootstrap_indices, percentile_interval
from .froc import froc_curve, sensitivity_at
from .metrics import estimate
from .outcomes import OutcomeTable
from .paired import compare_runs
from .results_io import (DETECTIONS_FILE, INFERENCE_DIR, PER_IMAGE_FILE, ResultsError, find_results_folder, json_safe,
                         read_detections, write_per_image)
from .run_dir import fold_dirs
from .score_rule import ScoreRule, held_out, refuse_existing

RULES = ("rate", "prior_shift")
SITE_THRESHOLD_FILE = "site_threshold.json"
SITE_THRESHOLD_FORMAT = 1
SHIFT_BOUND = 30.0  # |b| of the prior shift is searched in [-SHIFT_BOUND, SHIFT_BOUND] (logit units)
SCORE_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before their logit


# ----------------------------------------------------------------------------------------------------- fitting


def _shifted_mean(scores: np.ndarray, shift: float) -> float:
    detected = scores > 0
    p = expit(logit(np.clip(scores[detected], SCORE_EPS, 1 - SCORE_EPS)) + shift)
    return float(p.sum() / len(scores))


def fit_site_threshold(scores, labels, rule: str = "rate") -> Dict[str, Any]:
    """Fit a site threshold from image-level scores and labels (see the module docstring).

    Args:
        scores: (N,) abnormality scores in [0, 1] (0: no detection). labels: (N,) image labels 0 / 1 / 2.
        rule: "rate" or "prior_shift".
    Returns:
        {"rule", "tau", "rate" (abnormal fraction of the labels), "images", "abnormal", "reachable" (False: the
        rate cannot be reached and tau is the lowest detection score), "called_abnormal" (fraction with s >= tau)}
        and for "prior_shift" "shift" (b, logit units).
    Raises:
        ValueError: an unknown rule, no image, scores and labels of different lengths, no benign / malignant image,
        or no detection at all.
    """
    if rule not in RULES:
        raise ValueError(f"site threshold rule must be one of {RULES}, not {rule!r}")
    scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} image labels")
    if len(scores) == 0:
        raise ValueError("no images to fit a site threshold on")
    abnormal = int(np.sum(labels != NORMAL))
    if abnormal == 0:
        raise ValueError(f"none of the {len(labels)} images is labelled benign or malignant: the site's abnormal "
                         "rate is 0, so image labels give no threshold (a site needs scans with a lesion)")
    detected = np.sort(scores[scores > 0])[::-1]
    if len(detected) == 0:
        raise ValueError(f"none of the {len(scores)} images has a detection: no score to set a threshold on")
    rate = abnormal / len(labels)
    fit: Dict[str, Any] = {"rule": rule, "rate": rate, "images": int(len(labels)), "abnormal": abnormal}
    if rule == "rate":
        needed = int(math.ceil(rate * len(scores) - 1e-9))
        reachable = needed <= len(detected)
        tau = float(detected[needed - 1] if reachable else detected[-1])
    else:
        reachable = _shifted_mean(scores, SHIFT_BOUND) >= rate and _shifted_mean(scores, -SHIFT_BOUND) <= rate
        if reachable:
            shift = float(brentq(lambda b: _shifted_mean(scores, b) - rate, -SHIFT_BOUND, SHIFT_BOUND, xtol=1e-10))
            tau = float(expit(-shift))
        else:
            shift, tau = SHIFT_BOUND, float(detected[-1])
        fit["shift"] = shift
    fit.update(tau=tau, reachable=bool(reachable), called_abnormal=float(np.mean(scores >= tau)))
    return fit


@dataclass
class SiteThreshold(ScoreRule):
    """A site's detection score threshold (a :class:`~.score_rule.ScoreRule`): ``tau`` fitted by ``rule`` from
    image labels alone, with the ``fit`` record of :func:`fit_site_threshold`. Called on abnormality scores (any
    shape) it gives whether each image is called abnormal (``s >= tau``, bool, same shape)."""

    WHAT: ClassVar[str] = "site threshold"
    FORMAT: ClassVar[int] = SITE_THRESHOLD_FORMAT

    rule: str
    tau: float
    fit_record: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, scores, labels, rule: str = "rate") -> "SiteThreshold":
        """Fit ``rule`` on abnormality scores (N,) and image labels (N,) 0 / 1 / 2 (:func:`fit_site_threshold`)."""
        record = fit_site_threshold(scores, labels, rule)
        return cls(rule, record["tau"], record)

    def __call__(self, scores) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) >= self.tau

    def to_json(self) -> Dict[str, Any]:
        return {"rule": self.rule, "score_thresh": self.tau}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> "SiteThreshold":
        """Only ``score_thresh`` (and ``rule``) are read; ValueError naming ``path`` unless the threshold is a
        number in (0, 1]."""
        tau = data.get("score_thresh")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 < tau <= 1.0:
            raise ValueError(f"site threshold file {path}: score_thresh {tau!r} is not a number in (0, 1]")
        return cls(str(data.get("rule", "")), float(tau), dict(data.get("deploy") or {}))


def cross_fit(scores, labels, folds, rule: str = "rate") -> Tuple[np.ndarray, Dict[int, Dict[str, Any]]]:
    """Cross-fitted thresholds: each fold's images get the threshold fitted on the other folds' images only
    (:meth:`SiteThreshold.cross_fit`).

    Args:
        scores: (N,) abnormality scores. labels: (N,) image labels. folds: (N,) fold of each image (>= 2 folds).
        rule: see :func:`fit_site_threshold`.
    Returns:
        (taus (N,) float64, {fold: the fit used for that fold's images}).
    """
    rules = SiteThreshold.cross_fit(np.asarray(scores, np.float64), labels, folds, rule=rule)
    return held_out(rules, folds, lambda threshold, held: threshold.tau), {k: r.fit_record for k, r in rules.items()}


# ----------------------------------------------------------------------------------------------------- folds


def match_files(file_names: Sequence[str], table: Mapping[str, Any], source: str = "the folds table") -> List[str]:
    """The key of ``table`` (file names relative to an image root, e.g. ``benign/case001.png``) for each of
    ``file_names`` (as stored in a run's results, usually absolute): the longest trailing part of the path that is
    a key. ValueError naming the first unmatched images."""
    keys, missing = [], []
    for name in file_names:
        parts = os.path.normpath(str(name)).replace(os.sep, "/").split("/")
        key = next(("/".join(parts[k:]) for k in range(len(parts)) if "/".join(parts[k:]) in table), None)
        keys.append(key)
        if key is None:
            missing.append(str(name))
    if missing:
        raise ValueError(f"{len(missing)} of {len(file_names)} images are not in {source}: {', '.join(missing[:3])}"
                         + (" ..." if len(missing) > 3 else ""))
    return keys


def site_folds(file_names: Sequence[str], labels, folds_table: Mapping[str, tuple], inner_folds: int = 0,
               seed: int = 0, source: str = "the folds table") -> np.ndarray:
    """The fold (N,) of each image for cross-fitting.

    Args:
        file_names: (N,) the run's image files. labels: (N,) their image labels (checked against the table).
        folds_table: :func:`wssdl_d2.data.folds.read_folds_csv`'s file_name -> (label, group, fold).
        inner_folds: 0: the table's folds (the site's patient folds); K >= 2: a new K-fold split of these images
            by the table's near-duplicate groups, stratified by label (:func:`wssdl_d2.data.splits.assign_folds`),
            for a run that covers a single fold of the table (a cross-validation model's held-out fold).
        seed: the seed of the inner split.
    """
    from ..data.splits import assign_folds

    keys = match_files(file_names, folds_table, source)
    labels = np.asarray(labels)
    table_labels = np.asarray([folds_table[k][0] for k in keys])
    differ = np.flatnonzero(table_labels != labels)
    if len(differ):
        raise ValueError(f"{source} and the run disagree on the image label of {len(differ)} images, e.g. "
                         f"{keys[differ[0]]} ({table_labels[differ[0]]} vs {labels[differ[0]]})")
    if inner_folds:
        groups = np.asarray([folds_table[k][1] for k in keys])
        return assign_folds(labels, groups, int(inner_folds), seed)
    folds = np.asarray([folds_table[k][2] for k in keys], dtype=np.int64)
    if (folds < 0).any():
        raise ValueError(f"{int((folds < 0).sum())} images are excluded from every fold in {source} "
                         f"(fold -1), e.g. {keys[int(np.flatnonzero(folds < 0)[0])]}")
    if len(np.unique(folds)) < 2:
        raise ValueError(f"the run's {len(folds)} images all lie in fold {folds[0]} of {source}: pass inner_folds "
                         "(--inner-folds K) to split them for cross-fitting")
    return folds


# ----------------------------------------------------------------------------------------------------- scoring


def detections_dir(path: str) -> str:
    """The folder holding a run's ``corloc_detections.json``: the run folder itself, its ``inference/`` folder or
    the file's folder. ResultsError naming the path otherwise."""
    path, folder = find_results_folder(path, (DETECTIONS_FILE,))
    if folder:
        return folder
    raise ResultsError(f"{path}: no {DETECTIONS_FILE} here or in {os.path.join(path, INFERENCE_DIR)} (an evaluation "
                       "with WSSDL.EVAL.CORLOC True and an OUTPUT_DIR writes it)")


def read_run_detections(path: str) -> Tuple[str, List[Dict[str, Any]]]:
    """(the run's name folder, its per-image detections) for an evaluated run (:func:`detections_dir`) or a
    cross-validation row: a folder whose ``fold<k>/`` subfolders (or their ``inference/``) hold the held-out folds'
    detections, concatenated so each image carries the detections of the model that did not train on it.
    ResultsError naming the path when there are none, or when an image is in two folds."""
    try:
        folder = detections_dir(path)
        return folder, read_detections(folder)
    except ResultsError:
        folds = sorted(fold_dirs(path).items())
        if not folds:
            raise
    images, seen = [], {}
    for fold, fold_path in folds:
        for image in read_detections(detections_dir(fold_path)):
            if image["file_name"] in seen:
                raise ResultsError(f"{path}: {image['file_name']} is in fold{seen[image['file_name']]} and fold{fold}")
            seen[image["file_name"]] = fold
            images.append(image)
    return os.path.abspath(path), images


def rescore(images: Sequence[Mapping[str, Any]], taus, iou_thresh: float = 0.5) -> OutcomeTable:
    """Per-image outcomes of a run's ``corloc_detections.json`` entries with image i thresholded at ``taus[i]``
    ((N,) or a scalar)."""
    taus = np.broadcast_to(np.asarray(taus, np.float64), (len(images),))
    table = OutcomeTable()
    for image, tau in zip(images, taus):
        table.add(image["image_id"], image["file_name"], int(image["image_label"]), image["gt_boxes"],
                  image["gt_classes"], image["boxes"], image["scores"], image["classes"], float(tau), iou_thresh)
    return table


def _summary(table: OutcomeTable, indices: np.ndarray, level: float) -> Dict[str, Any]:
    columns = table.columns
    label = columns["image_label"]
    out = {name: {"value": value, "ci": percentile_interval(samples, level)}
           for name, (value, samples) in estimate(columns, indices).items()
           if name.startswith("CorLoc") or name == "Accuracy"}
    out["FP_per_image"] = float(np.sum(columns["fp_at_tau"]) / len(label))
    normal = label == NORMAL
    out["FP_per_normal"] = float(np.mean(columns["fp_at_tau"][normal])) if normal.any() else math.nan
    out["called_abnormal"] = float(np.mean(columns["num_det_at_tau"] > 0))
    return out


def hit_score_quartiles(columns: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Score of the top-1 box where it hits the lesion (``top1_score`` of images with ``hit_top1``): {n, q1,
    median, q3} (NaN without a hit)."""
    hits = np.asarray(columns["top1_score"], np.float64)[np.asarray(columns["hit_top1"], bool)]
    q = np.quantile(hits, [0.25, 0.5, 0.75]) if len(hits) else [math.nan] * 3
    return {"n": int(len(hits)), "q1": float(q[0]), "median": float(q[1]), "q3": float(q[2])}


def evaluate_site_threshold(images: Sequence[Mapping[str, Any]], folds, rule: str = "rate", tau: float = 0.5,
                            iou_thresh: float = 0.5, samples: int = 2000, seed: int = 0,
                            level: float = 0.95) -> Dict[str, Any]:
    """Cross-fit a site threshold on a run's images and compare its per-image outcomes with those at ``tau``.

    Args:
        images: the run's ``corloc_detections.json`` entries (N). folds: (N,) fold of each image (>= 2 folds).
        rule: see :func:`fit_site_threshold`. tau: the reference threshold. iou_thresh: a hit needs IoU above it.
        samples, seed, level: the bootstrap (one index matrix for both thresholds, so the comparison is paired).
    Returns:
        {"rule", "tau_reference", "deploy" (the fit on all images), "folds" ({fold: fit}), "taus" (N,),
        "reference" / "site" (CorLoc, CorLoc_top1, per class, Accuracy {value, ci}; FP_per_image over all images;
        FP_per_normal; called_abnormal), "comparison" (site - reference, :func:`.paired.compare_runs`: CorLoc diff,
        CI, McNemar), "hit_scores" (:func:`hit_score_quartiles`), "froc_sens@1" (FROC sensitivity at 1 false
        positive per image), "froc_sens@site_fppi" (at the site threshold's false positives per image: the point
        of the model's own FROC curve the threshold moves to), "counts", and the tables "reference_table" /
        "site_table" (:class:`.OutcomeTable`).
    """
    if len(images) == 0:
        raise ValueError("no images in the run")
    reference = rescore(images, tau, iou_thresh)
    columns = reference.columns
    taus, fits = cross_fit(columns["abnormality_score"], columns["image_label"], folds, rule)
    site = rescore(images, taus, iou_thresh)
    indices = bootstrap_indices(len(reference), samples, seed)
    comparison = compare_runs(site.columns, columns, samples, seed, level, "site threshold", f"tau {tau:g}")
    label = columns["image_label"]
    froc = froc_curve(reference.lesion_scores, reference.fp_scores, len(reference))
    site_summary = _summary(site, indices, level)
    return {
        "rule": rule, "tau_reference": float(tau), "iou_thresh": float(iou_thresh),
        "deploy": fit_site_threshold(columns["abnormality_score"], label, rule),
        "folds": fits, "taus": taus,
        "reference": _summary(reference, indices, level), "site": site_summary,
        "comparison": {name: comparison[name] for name in comparison if name.startswith("CorLoc")},
        "hit_scores": hit_score_quartiles(columns), "froc_sens@1": sensitivity_at(froc, (1.0,))[0],
        "froc_sens@site_fppi": sensitivity_at(froc, (site_summary["FP_per_image"],))[0],
        "counts": {"images": int(len(label)), "mass_images": int(np.sum(columns["has_mass"])),
                   "normal": int(np.sum(label == NORMAL)), "folds": int(len(fits))},
        "bootstrap": {"samples": int(samples), "seed": int(seed), "level": float(level)},
        "reference_table": reference, "site_table": site,
    }


# ----------------------------------------------------------------------------------------------------- files


def write_site_threshold(result: Mapping[str, Any], out_dir: str, sources: Optional[Mapping[str, str]] = None,
                         overwrite: bool = False) -> Dict[str, str]:
    """Write ``site_threshold.json`` (everything of :func:`evaluate_site_threshold` but the tables, plus
    ``sources``) and the per-image outcomes at the cross-fitted thresholds (``corloc_per_image.csv``) into
    ``out_dir``. FileExistsError if either exists and not ``overwrite``. Returns {"json": path, "csv": path}."""
    paths = {"json": os.path.join(out_dir, SITE_THRESHOLD_FILE), "csv": os.path.join(out_dir, PER_IMAGE_FILE)}
    refuse_existing(paths.values(), overwrite)
    os.makedirs(out_dir, exist_ok=True)
    data = {k: v for k, v in result.items() if not k.endswith("_table")}
    data.update(format=SITE_THRESHOLD_FORMAT, score_thresh=result["deploy"]["tau"], sources=dict(sources or {}),
                apply=f"WSSDL.EVAL.SCORE_THRESH {result['deploy']['tau']:.4f} (evaluator; tools/demo.py's default "
                      "--confidence-threshold), or tools/demo.py --site-threshold with this file",
                per_image_tau=[{"file_name": row["file_name"], "tau": t}
                               for row, t in zip(result["site_table"].rows, result["taus"])])
    data.pop("taus")
    deploy = result["deploy"]
    SiteThreshold(deploy["rule"], deploy["tau"], deploy).save(paths["json"], extra=json_safe(data))
    write_per_image(out_dir, result["site_table"].rows)
    return paths


def load_site_threshold(path: str) -> float:
    """The threshold to deploy (``score_thresh``) of a ``site_threshold.json`` (:meth:`SiteThreshold.load`);
    ValueError naming the file when it is not one or the threshold is not a number in (0, 1]."""
    return SiteThreshold.load(path).tau


# ----------------------------------------------------------------------------------------------------- tables


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.1f}"


def run_names(paths: Sequence[str]) -> List[str]:
    """Short names of results folders: each path without the part all share at the front and without a trailing
    ``inference`` (``.../busi/wssdl_20/fold0/breast/inference`` among its siblings -> ``wssdl_20/fold0/breast``)."""
    split = [[p for p in os.path.normpath(os.path.abspath(path)).split(os.sep) if p] for path in paths]
    split = [parts[:-1] if parts and parts[-1] == "inference" else parts for parts in split]
    common = 0
    if len(split) > 1:
        while all(len(parts) > common + 1 for parts in split) and len({parts[common] for parts in split}) == 1:
            common += 1
    else:
        common = max(len(split[0]) - 1, 0) if split else 0
    return ["/".join(parts[common:]) for parts in split]


def summary_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of :func:`evaluate_site_threshold` results by run name: one row per run, then, when several
    runs share the first part of their name (a config's fold models), a row with their means (the hit scores'
    quartiles pooled over those runs' images)."""
    header = ("| run | site tau (cross-fitted folds) | CorLoc at tau | CorLoc at site tau [95% CI] | "
              "difference [95% CI], McNemar p | top-1 CorLoc | FP / image at tau -> site tau | "
              "hit score median [q1, q3] | FROC sens @ 1 FP/image; @ site FP/image |")
    lines = [header, "|" + "---|" * header.count(" |")]
    groups: Dict[str, List[Mapping[str, Any]]] = {}
    for name, r in results.items():
        taus = [fit["tau"] for fit in r["folds"].values()]
        c = r["comparison"]["CorLoc"]
        p = (c["mcnemar"] or {}).get("p_value", math.nan)
        site, ref, hits = r["site"]["CorLoc"], r["reference"]["CorLoc"], r["hit_scores"]
        lines.append(
            f"| {name} | {_fmt(min(taus), 3)}-{_fmt(max(taus), 3)} | {_fmt(ref['value'])} | {_fmt(site['value'])} "
            f"[{_fmt(site['ci'][0])}, {_fmt(site['ci'][1])}] | {_signed(c['diff'])} [{_signed(c['ci'][0])}, "
            f"{_signed(c['ci'][1])}], {'-' if math.isnan(p) else f'{p:.2g}'} | {_fmt(r['reference']['CorLoc_top1']['value'])} | "
            f"{_fmt(r['reference']['FP_per_image'], 2)} -> {_fmt(r['site']['FP_per_image'], 2)} | "
            f"{_fmt(hits['median'], 2)} [{_fmt(hits['q1'], 2)}, {_fmt(hits['q3'], 2)}] | "
            f"{_fmt(r['froc_sens@1'], 3)}; {_fmt(r['froc_sens@site_fppi'], 3)} |")
        groups.setdefault(name.split("/")[0], []).append(r)
    for group, runs in groups.items():
        if len(runs) < 2 or len(groups) == len(results):
            continue

        def mean(get):
            return float(np.mean([get(r) for r in runs]))

        taus = [fit["tau"] for r in runs for fit in r["folds"].values()]
        pooled = hit_score_quartiles({k: np.concatenate([r["reference_table"].columns[k] for r in runs])
                                      for k in ("top1_score", "hit_top1")})
        lines.append(
            f"| **{group}, mean of {len(runs)}** | {_fmt(min(taus), 3)}-{_fmt(max(taus), 3)} | "
            f"{_fmt(mean(lambda r: r['reference']['CorLoc']['value']))} | "
            f"{_fmt(mean(lambda r: r['site']['CorLoc']['value']))} | "
            f"{_signed(mean(lambda r: r['comparison']['CorLoc']['diff']))} | "
            f"{_fmt(mean(lambda r: r['reference']['CorLoc_top1']['value']))} | "
            f"{_fmt(mean(lambda r: r['reference']['FP_per_image']), 2)} -> "
            f"{_fmt(mean(lambda r: r['site']['FP_per_image']), 2)} | "
            f"{_fmt(pooled['median'], 2)} [{_fmt(pooled['q1'], 2)}, {_fmt(pooled['q3'], 2)}] (pooled) | "
            f"{_fmt(mean(lambda r: r['froc_sens@1']), 3)}; {_fmt(mean(lambda r: r['froc_sens@site_fppi']), 3)} |")
    return "\n".join(lines)
