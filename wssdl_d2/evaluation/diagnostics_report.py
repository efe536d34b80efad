"""The detection-diagnostics report of ``tools/diagnose_detections.py``: read evaluated runs (their
``corloc_detections.json`` and the images they name), compute :mod:`.detection_diagnostics`' per-image rows, and
compare configs: each one's summary, and each config against a reference on the same images (subgroup CorLoc
differences, what tells the images found by one config only from those found by the other only, and paired
behaviour flags).

A *run* is a name and a list of (fold, results folder). Two layouts:

- **pooled** (cross-validation out-of-fold predictions): every folder holds other images; the summaries and the
  paired tests pool all folders, the bootstrap resamples within folds.
- **per model** (the fold models of one config all evaluated on the same external test set): every folder holds
  the same images; each folder is summarised and compared on its own, and the Markdown gives the mean and the
  range over folders.
"""
import csv
import math
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import spearmanr

from ..data.image_io import read_image
from ..data.overlays import field_of_view_box, overlay_mask
from ..utils.atomic import atomic_open
from . import results_io
from .results_io import csv_cell
from .run_dir import fold_in_path
from .detection_diagnostics import (DIAGNOSTIC_COLUMNS, align, as_columns, discordant_profile, image_diagnostics,
                                    paired_flags, spread, subgroup_differences, summarize)

#: Rows of the per-config table: summary key -> label (each a (k, n) count shown as percent).
SUMMARY_ROWS = OrderedDict([
    ("CorLoc", "CorLoc (score >= tau), mass images"),
    ("CorLoc_top1", "top-1 CorLoc, mass images"),
    ("has_overlay", "images with a burnt-in overlay"),
    ("has_overlay_mass", "mass images with an overlay"),
    ("has_overlay_normal", "normal images with an overlay"),
    ("has_calipers", "mass images with marks on / beside the mass (calipers)"),
    ("CorLoc_with_calipers", "CorLoc, mass images with calipers"),
    ("CorLoc_without_calipers", "CorLoc, mass images without calipers"),
    ("top_on_mass", "top box on the mass (IoU > 0.5, any class), mass images"),
    ("top_at_border_mass", "top box at the image border, mass images"),
    ("top_at_border_normal", "top box at the image border, normal images"),
    ("top_at_fov_edge_mass", "top box at the field-of-view edge, mass images"),
    ("top_covers_overlay_mass", "top box covers overlay pixels, mass images"),
    ("top_covers_overlay_normal", "top box covers overlay pixels, normal images"),
    ("fp_at_border", "false positives (score >= tau) at the border, of all FPs"),
    ("fp_covers_overlay", "false positives covering overlay pixels, of all FPs"),
    ("normal_with_detection_at_tau", "normal images with a detection >= tau"),
    ("normal_with_detection_at_tau_overlay", "... of those with an overlay"),
    ("normal_with_detection_at_tau_clean", "... of those without"),
    ("miss_wrong_class", "missed: right place, wrong class (mass images)"),
    ("miss_low_score", "missed: right place and class, score < tau"),
    ("miss_elsewhere", "missed: no box on the mass"),
    ("top_malignant", "top box malignant (mass images with a detection)"),
    ("true_malignant", "true label malignant (mass images)"),
])
#: Plain values of the summary shown as they are.
VALUE_ROWS = OrderedDict([
    ("mean_top_score_normal", "mean top score, normal images"),
    ("mean_top_score_benign", "mean top score, benign images"),
    ("mean_top_score_malignant", "mean top score, malignant images"),
    ("median_top_area_to_gt", "median top-box area / mass-box area"),
])


def parse_run(spec: str) -> Tuple[str, List[Tuple[int, str]]]:
    """``NAME=FOLDER[,FOLDER...]`` -> (name, [(fold, folder)]): the fold is the number after ``fold`` in the
    folder's path, else its position. Raises ValueError for a spec without ``=`` or folders."""
    name, sep, folders = spec.partition("=")
    paths = [p for p in folders.split(",") if p]
    if not sep or not name or not paths:
        raise ValueError(f"run {spec!r}: expected NAME=FOLDER[,FOLDER...]")
    out = []
    for k, path in enumerate(paths):
        fold = fold_in_path(path)
        out.append((k if fold is None else fold, path))
    return name, out


def _settings(folder: str) -> Tuple[Optional[float], Optional[float]]:
    path = os.path.join(folder, results_io.REPORT_FILE)
    if not os.path.isfile(path):
        return None, None
    settings = results_io.read_report(folder)["settings"]
    return settings.get("tau"), settings.get("iou_thresh")


def diagnose_runs(runs: Mapping[str, Sequence[Tuple[int, str]]], tau: Optional[float] = None,
                  iou_thresh: Optional[float] = None, border_px: float = 8.0, min_overlay_px: int = 10,
                  near_px: float = 15.0, reader: Callable[[str], np.ndarray] = read_image,
                  ) -> Tuple[Dict[str, Dict[str, np.ndarray]], Dict[str, Any]]:
    """Per-image diagnostic columns of every run; each image file is read and analysed once for all runs. The hit
    flags come from each folder's ``corloc_per_image.csv`` (exact), the rest from ``corloc_detections.json``.

    Args:
        runs: name -> [(fold, results folder: a run folder or its ``inference/``)].
        tau, iou_thresh: default: the runs' ``corloc.json`` settings (they must agree), else 0.5 / 0.5.
        reader: path -> (H, W[, 3]) uint8 image (default :func:`wssdl_d2.data.image_io.read_image`, BGR).
    Returns:
        (name -> column name -> (N,) array with ``fold`` first, settings dict). Raises ResultsError naming the
        folder / image for unreadable results or images, or runs evaluated with different settings.
    """
    entries: Dict[str, List[Tuple[str, int, Dict]]] = OrderedDict()
    seen = {}
    for name, folders in runs.items():
        for fold, folder in folders:
            results = results_io.resolve_results_dir(folder)
            found = _settings(results)
            for key, value in zip(("tau", "iou_thresh"), found):
                if value is not None:
                    if key in seen and seen[key][0] != value:
                        raise results_io.ResultsError(f"{results} was evaluated with {key} {value} but "
                                                      f"{seen[key][1]} with {seen[key][0]}")
                    seen.setdefault(key, (value, results))
            saved = results_io.read_per_image(results)
            saved_rows = {f: {k: v[i] for k, v in saved.items()} for i, f in enumerate(saved["file_name"])}
            for entry in results_io.read_detections(results):
                if entry["file_name"] not in saved_rows:
                    raise results_io.ResultsError(f"{results}: {entry['file_name']} is in "
                                                  f"{results_io.DETECTIONS_FILE} but not in "
                                                  f"{results_io.PER_IMAGE_FILE}")
                entries.setdefault(entry["file_name"], []).append((name, fold, entry, saved_rows[entry["file_name"]]))
    tau = tau if tau is not None else seen.get("tau", (0.5,))[0]
    iou_thresh = iou_thresh if iou_thresh is not None else seen.get("iou_thresh", (0.5,))[0]
    rows: Dict[str, List[Dict]] = {name: [] for name in runs}
    for file_name, items in entries.items():
        image = reader(file_name)
        overlay, fov = overlay_mask(image), field_of_view_box(image)
        for name, fold, entry, saved in items:
            row = image_diagnostics(entry, overlay, fov, tau, iou_thresh, border_px, min_overlay_px, near_px, saved)
            rows[name].append({"fold": fold, **row})
    settings = {"tau": tau, "iou_thresh": iou_thresh, "border_px": border_px, "min_overlay_px": min_overlay_px,
                "near_px": near_px}
    return {name: as_columns(r) for name, r in rows.items()}, settings


def is_per_model(columns: Mapping[str, np.ndarray]) -> bool:
    """True when a file appears in several folds (every fold model tested on the same images)."""
    return len(set(columns["file_name"])) < len(columns["file_name"])


def _subset(columns: Mapping[str, np.ndarray], keep: np.ndarray) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v)[keep] for k, v in columns.items()}


def _pair_features(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], small: np.ndarray):
    """Features of the discordant images: the image's own, and the top box of the config that missed it."""
    a_hit, b_hit = a["hit_any"].astype(bool), b["hit_any"].astype(bool)
    loser = {flag: np.where(a_hit & ~b_hit, b[flag], a[flag]).astype(bool)
             for flag in ("top_at_border", "top_covers_overlay")}
    label = a["image_label"].astype(int)
    return OrderedDict([
        ("calipers", a["has_calipers"]), ("any overlay", a["has_overlay"]), ("malignant", label == 2),
        ("mass at border", a["mass_at_border"]), ("small mass (below median)", small),
        ("missing config's top box at border", loser["top_at_border"]),
        ("missing config's top box covers overlay", loser["top_covers_overlay"]),
        ("missing config: wrong class", np.where(a_hit & ~b_hit, b["miss_reason"], a["miss_reason"]) == "wrong_class"),
    ])


def _groups(a: Mapping[str, np.ndarray], small: np.ndarray):
    label = a["image_label"].astype(int)
    calipers = a["has_calipers"].astype(bool)
    return OrderedDict([
        ("all mass images", np.ones(len(label), bool)), ("with calipers", calipers), ("without calipers", ~calipers),
        ("benign", label == 1), ("malignant", label == 2), ("mass at border", a["mass_at_border"].astype(bool)),
        ("small mass", small), ("large mass", ~small),
    ])


def compare_pair(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], num_samples: int = 2000,
                 seed: int = 0) -> Dict[str, Any]:
    """A against B (aligned columns) on one set of images: subgroup differences, the discordant profile and the
    paired behaviour flags."""
    mass = a["has_mass"].astype(bool)
    area = a["mass_area_frac"].astype(float)
    small = mass & (area < np.nanmedian(area[mass])) if mass.any() else np.zeros(len(mass), bool)
    normal = a["image_label"].astype(int) == 0
    flags = OrderedDict()
    for flag in ("top_covers_overlay", "top_at_border", "top_at_fov_edge"):
        flags[flag] = paired_flags(a, b, flag)
        flags[flag + " (normal images)"] = paired_flags(a, b, flag, normal)
    a, b = dict(a, detects_at_tau=a["num_at_tau"] > 0), dict(b, detects_at_tau=b["num_at_tau"] > 0)
    flags["detection >= tau (normal images)"] = paired_flags(a, b, "detects_at_tau", normal)
    for reason in ("wrong_class", "low_score", "elsewhere"):
        a, b = dict(a, flag=a["miss_reason"] == reason), dict(b, flag=b["miss_reason"] == reason)
        flags[f"missed: {reason} (mass images)"] = paired_flags(a, b, "flag", mass)
    return {"subgroups": subgroup_differences(a, b, _groups(a, small), num_samples=num_samples, seed=seed),
            "discordant": discordant_profile(a, b, _pair_features(a, b, small)),
            "flags": flags}


def build_report(columns_by_run: Mapping[str, Mapping[str, np.ndarray]], reference: Optional[str] = None,
                 num_samples: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """Summaries and comparisons of the runs (see the module docstring).

    Returns {"per_model": bool, "reference", "runs": name -> {"pooled": :func:`summarize`, "folds": fold ->
    summary}, "pairs": name -> {"pooled": :func:`compare_pair` (pooled layout only), "folds": fold ->
    compare_pair (per-model layout only)}}, and in the per-model layout "model_association"
    (:func:`model_association`). Raises ValueError for an unknown reference or runs on other images.
    """
    names = list(columns_by_run)
    reference = reference or names[0]
    if reference not in columns_by_run:
        raise ValueError(f"reference {reference!r} is not one of the runs: {', '.join(names)}")
    per_model = any(is_per_model(c) for c in columns_by_run.values())
    report = {"per_model": per_model, "reference": reference, "runs": OrderedDict(), "pairs": OrderedDict()}
    for name, columns in columns_by_run.items():
        folds = np.asarray(columns["fold"])
        report["runs"][name] = {"pooled": summarize(columns),
                                "folds": {int(f): summarize(_subset(columns, folds == f)) for f in np.unique(folds)}}
    ref = columns_by_run[reference]
    for name, columns in columns_by_run.items():
        if name == reference:
            continue
        b = align(columns, ref, name, reference)
        if per_model:
            folds = np.asarray(columns["fold"])
            report["pairs"][name] = {"folds": {int(f): compare_pair(_subset(columns, folds == f),
                                                                    _subset(b, folds == f), num_samples, seed)
                                               for f in np.unique(folds)}}
        else:
            report["pairs"][name] = {"pooled": compare_pair(columns, b, num_samples, seed)}
    if per_model:
        report["model_association"] = model_association(report)
    return report


def _pct(k: int, n: int) -> float:
    return 100.0 * k / n if n else float("nan")


def _count_cell(summaries: Sequence[Mapping], key: str, per_model: bool) -> str:
    if not per_model:
        k, n = summaries[0][key]
        return f"{_pct(k, n):.1f} ({k}/{n})" if n else "-"
    mean, lo, hi = spread([_pct(*s[key]) for s in summaries])
    return "-" if math.isnan(mean) else f"{mean:.1f} ({lo:.1f}-{hi:.1f})"


def _value_cell(summaries: Sequence[Mapping], key: str, per_model: bool) -> str:
    mean, lo, hi = spread([s[key] for s in summaries])
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f} ({lo:.3f}-{hi:.3f})" if per_model else f"{mean:.3f}"


def _p(p: float) -> str:
    return "-" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.2g}"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: the per-config table, then each config against the reference."""
    per_model = report["per_model"]
    runs = report["runs"]
    lines = []
    unit = "percent, mean (range) over fold models" if per_model else "percent (count / denominator), pooled"
    lines += [f"| {unit} | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    pick = (lambda r: list(r["folds"].values())) if per_model else (lambda r: [r["pooled"]])
    for key, label in SUMMARY_ROWS.items():
        lines.append(f"| {label} | " + " | ".join(_count_cell(pick(r), key, per_model) for r in runs.values()) + " |")
    for key, label in VALUE_ROWS.items():
        lines.append(f"| {label} | " + " | ".join(_value_cell(pick(r), key, per_model) for r in runs.values()) + " |")
    if per_model:
        lines += [""] + model_table(report)
    ref = report["reference"]
    for name, pair in report["pairs"].items():
        lines += ["", f"**{name} - {ref}**, paired on the same images:", ""]
        if per_model:
            lines += _per_model_pair(pair["folds"])
        else:
            lines += _pooled_pair(pair["pooled"], name, ref)
    return "\n".join(lines) + "\n"


#: Per-model behaviours set against each model's CorLoc in the per-model layout.
MODEL_COLUMNS = ("top_at_border_mass", "top_at_fov_edge_mass", "miss_wrong_class", "miss_low_score",
                 "miss_elsewhere", "top_malignant")


def model_association(report: Mapping[str, Any]) -> "OrderedDict[str, Dict[str, float]]":
    """Per-model layout: over every (run, fold) model, Spearman's rank correlation of each ``MODEL_COLUMNS``
    rate with the model's CorLoc: column -> {"rho", "p", "models"} (NaN when either is constant)."""
    summaries = [s for r in report["runs"].values() for s in r["folds"].values()]
    corloc = [_pct(*s["CorLoc"]) for s in summaries]
    out = OrderedDict()
    for key in MODEL_COLUMNS:
        rates = [_pct(*s[key]) for s in summaries]
        rho, p = float("nan"), float("nan")
        if len(summaries) > 2 and np.ptp(corloc) > 0 and np.ptp(rates) > 0:  # undefined for constant values
            rho, p = spearmanr(corloc, rates)
        out[key] = {"rho": float(rho), "p": float(p), "models": len(summaries)}
    return out


def model_table(report: Mapping[str, Any]) -> List[str]:
    """Per-model layout: one row per (run, fold) model with its CorLoc and ``MODEL_COLUMNS`` rates (percent),
    and a last row with each rate's Spearman correlation with CorLoc over the models."""
    labels = {**SUMMARY_ROWS}
    lines = ["| model | CorLoc | " + " | ".join(labels[k] for k in MODEL_COLUMNS) + " |",
             "|---|---|" + "---|" * len(MODEL_COLUMNS)]
    for name, run in report["runs"].items():
        for fold, s in run["folds"].items():
            lines.append(f"| {name} fold {fold} | {_pct(*s['CorLoc']):.1f} | "
                         + " | ".join(f"{_pct(*s[k]):.1f}" for k in MODEL_COLUMNS) + " |")
    assoc = model_association(report)
    models = next(iter(assoc.values()))["models"]
    lines.append(f"| Spearman rho with CorLoc (p), {models} models | | "
                 + " | ".join(f"{a['rho']:+.2f} ({_p(a['p'])})" for a in assoc.values()) + " |")
    return lines


def _pooled_pair(pair: Mapping[str, Any], name: str, ref: str) -> List[str]:
    lines = ["| mass images | n | CorLoc A / B | A - B [95% CI] | McNemar p (A only / B only) |", "|---|---|---|---|---|"]
    for group, r in pair["subgroups"].items():
        if not r["n"]:
            continue
        m = r["mcnemar"]
        lines.append(f"| {group} | {r['n']} | {r['a']:.1f} / {r['b']:.1f} | {r['diff']:+.1f} "
                     f"[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}] | {_p(m['p_value'])} ({m['a_only']} / {m['b_only']}) |")
    counts = pair["discordant"]["_counts"]
    lines += ["", f"| images found by one config only | {name} only ({counts['a_only']}) | {ref} only "
                  f"({counts['b_only']}) | Fisher p |", "|---|---|---|---|"]
    for feature, r in pair["discordant"].items():
        if feature == "_counts":
            continue
        (ka, na), (kb, nb) = r["a_only"], r["b_only"]
        cells = [f"{k} ({_pct(k, n):.0f}%)" if n else "-" for k, n in ((ka, na), (kb, nb))]
        lines.append(f"| {feature} | {cells[0]} | {cells[1]} | {_p(r['p_fisher'])} |")
    lines += ["", f"| behaviour (images) | n | {name} | {ref} | McNemar p |", "|---|---|---|---|---|"]
    for flag, r in pair["flags"].items():
        lines.append(f"| {flag} | {r['n']} | {r['a']} | {r['b']} | {_p(r['p_value'])} |")
    return lines


def _per_model_pair(folds: Mapping[int, Mapping[str, Any]]) -> List[str]:
    order = sorted(folds)
    head = "| | " + " | ".join(f"fold {f}" for f in order) + " |"
    lines = [head, "|---|" + "---|" * len(order)]
    groups = list(next(iter(folds.values()))["subgroups"])
    for group in groups:
        cells = []
        for f in order:
            r = folds[f]["subgroups"][group]
            cells.append("-" if not r["n"] else f"{r['diff']:+.1f} (p {_p(r['mcnemar']['p_value'])}, n {r['n']})")
        lines.append(f"| CorLoc A - B, {group} | " + " | ".join(cells) + " |")
    for flag in next(iter(folds.values()))["flags"]:
        cells = [f"{folds[f]['flags'][flag]['a']} vs {folds[f]['flags'][flag]['b']} "
                 f"(p {_p(folds[f]['flags'][flag]['p_value'])})" for f in order]
        lines.append(f"| {flag}: A vs B | " + " | ".join(cells) + " |")
    return lines


def write_rows(columns: Mapping[str, np.ndarray], path: str) -> str:
    """Write one run's diagnostic columns as CSV (``DIAGNOSTIC_COLUMNS``; NaN empty). Returns the path."""
    names = [c for c in DIAGNOSTIC_COLUMNS if c in columns]
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i in range(len(columns["file_name"])):
            writer.writerow([csv_cell(columns[c][i]) for c in names])
    return path
