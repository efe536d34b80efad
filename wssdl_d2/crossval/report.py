"""The cross-validation report: per config the pooled and per-fold CorLoc (authors' and top-1) with intervals and
the false positives per normal image, and every pair's paired difference (stratified bootstrap CI, McNemar's p, and
Holm's adjustment over the report's pairs), as Markdown, JSON, CSV and a plot.

Given the pool's near-duplicate groups (``meta/groups.csv`` of the prepared dataset), the bootstrap resamples whole
groups within each fold and McNemar's test is the clustered one (several images of one lesion are not independent
evidence); without them, images are resampled and McNemar's test is exact."""
import csv
import os
from collections import OrderedDict
from itertools import combinations
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ..evaluation.paired import explain_difference
from ..evaluation.bootstrap import holm_adjust
from ..evaluation.pooled import HEADLINE_METRICS, cluster_labels, compare_pooled, per_fold_metrics, pooled_metrics
from ..evaluation.results_io import json_safe
from ..utils.atomic import atomic_open, atomic_write_json
from .external import external_markdown


def build_report(pooled_by_config: Mapping[str, Mapping[str, np.ndarray]], num_samples: int = 2000, seed: int = 0,
                 level: float = 0.95, timings: Mapping[str, Mapping[int, Dict]] = None,
                 groups: Optional[Mapping[str, int]] = None) -> Dict:
    """The report dict from each config's pooled outcomes ({config: pooled columns with ``fold``}).

    ``groups``: {image path relative to the image root: near-duplicate group}
    (:func:`wssdl_d2.data.prepared.read_near_duplicate_groups`); with it, intervals and p-values treat each group
    as one unit. Keys: ``configs`` {name: {pooled: metric -> {value, ci, n}, folds: fold -> metric -> {value, ci,
    n}, images, timing}}, ``pairs`` [{a, b, comparison (metric -> compare_runs-style dict plus ``p_value_test``,
    the test's p, and ``holm_p``), sentences}] for every pair, later config minus earlier one, and ``settings``.
    """
    names = list(pooled_by_config)
    clusters = ({name: cluster_labels(pooled["file_name"], groups, name) for name, pooled in pooled_by_config.items()}
                if groups else {name: None for name in names})
    unit = "near-duplicate groups" if groups else "images"
    report = {"settings": {"num_samples": num_samples, "seed": seed, "level": level,
                           "intervals": f"percentile bootstrap over {unit}, resampled within each fold",
                           "paired_test": ("clustered McNemar test (Durkalski et al. 2003) over near-duplicate "
                                           "groups" if groups else
                                           "McNemar's exact test on the images where one config is right"),
                           "multiplicity": "Holm's adjustment over all pairs of the report, per metric"},
              "configs": OrderedDict(), "pairs": []}
    for name in names:
        pooled = pooled_by_config[name]
        report["configs"][name] = {
            "images": int(len(pooled["file_name"])),
            "folds_tested": sorted(int(f) for f in np.unique(pooled["fold"])),
            "pooled": pooled_metrics(pooled, num_samples, seed, level, clusters=clusters[name]),
            "folds": per_fold_metrics(pooled, num_samples, seed, level),
            "timing": dict((timings or {}).get(name, {})),
        }
    test = "mcnemar_clustered" if groups else "mcnemar"
    for first, second in combinations(names, 2):
        comparison = compare_pooled(pooled_by_config[second], pooled_by_config[first], num_samples, seed, level,
                                    name_a=second, name_b=first, clusters=clusters[second])
        for metric in HEADLINE_METRICS:
            comparison[metric]["p_value_test"] = comparison[metric][test]["p_value"]
        report["pairs"].append({"a": second, "b": first, "comparison": comparison})
    for metric in HEADLINE_METRICS:
        adjusted = holm_adjust([pair["comparison"][metric]["p_value_test"] for pair in report["pairs"]])
        for pair, holm_p in zip(report["pairs"], adjusted):
            pair["comparison"][metric]["holm_p"] = float(holm_p)
    for pair in report["pairs"]:
        pair["sentences"] = {m: explain_difference(pair["comparison"], m, pair["a"], pair["b"], level)
                             for m in HEADLINE_METRICS}
    return report


def _ci(summary, digits=1):
    lo, hi = summary["ci"]
    return f"{summary['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(report: Mapping) -> str:
    """Two Markdown tables (configs: pooled and per-fold CorLoc; pairs: differences and p-values) and one sentence
    per pair and metric."""
    names = list(report["configs"])
    folds = sorted({f for c in report["configs"].values() for f in c["folds"]})
    level = round(100 * report["settings"]["level"])
    lines = [f"| config | images with a mass | CorLoc pooled [{level}% CI] | CorLoc top-1 pooled [{level}% CI] | "
             "FP per normal image | " + " | ".join(f"fold {f}" for f in folds) + " |",
             "|---|---|---|---|---|" + "---|" * len(folds)]
    for name in names:
        c = report["configs"][name]
        per_fold = [f"{c['folds'][f]['CorLoc']['value']:.1f} / {c['folds'][f]['CorLoc_top1']['value']:.1f}"
                    if f in c["folds"] else "-" for f in folds]
        fp = c["pooled"].get("FP_per_normal")
        fp_cell = _ci(fp, 2) if fp and np.isfinite(fp["value"]) else "-"
        lines.append(f"| {name} | {c['pooled']['CorLoc']['n']} | {_ci(c['pooled']['CorLoc'])} | "
                     f"{_ci(c['pooled']['CorLoc_top1'])} | {fp_cell} | " + " | ".join(per_fold) + " |")
    lines.append("")
    lines.append(f"Per fold: CorLoc / CorLoc top-1 on the held-out fold. Intervals: "
                 f"{report['settings']['intervals']}. False positives: detections scored >= the threshold on images "
                 "without a mass.")
    if report["pairs"]:
        lines += ["", f"| difference | CorLoc [{level}% CI] | p (A only / B only) | Holm p | "
                      f"CorLoc top-1 [{level}% CI] | p (A only / B only) | Holm p |", "|---|---|---|---|---|---|---|"]
        for pair in report["pairs"]:
            cells = []
            for metric in HEADLINE_METRICS:
                r = pair["comparison"][metric]
                m = r["mcnemar"]
                p = r.get("p_value_test", m["p_value"])
                holm = r.get("holm_p")
                cells += [f"{r['diff']:+.1f} [{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}]",
                          f"{p:.2g} ({m['a_only']} / {m['b_only']})",
                          "-" if holm is None or not np.isfinite(holm) else f"{holm:.2g}"]
            lines.append(f"| {pair['a']} - {pair['b']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"p: {report['settings']['paired_test']}; Holm p: "
                     f"{report['settings'].get('multiplicity', 'not adjusted')}.")
        lines.append("")
        for pair in report["pairs"]:
            lines += [f"- {s}" for s in pair["sentences"].values()]
    for section in report.get("external", ()):
        lines += ["", external_markdown(section, report["settings"]["level"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_csv(report: Mapping, path: str) -> str:
    """One row per (config, fold or "pooled", metric) and per (pair, metric): kind, config, fold, metric, value,
    lo, hi, n, mcnemar_p (exact), a_only, b_only, bootstrap_p, test_p (the report's paired test: clustered McNemar
    when groups were given), holm_p. Returns ``path``."""
    fields = ["kind", "config", "fold", "metric", "value", "lo", "hi", "n", "mcnemar_p", "a_only", "b_only",
              "bootstrap_p", "test_p", "holm_p"]
    rows = []
    for name, c in report["configs"].items():
        for fold, metrics in list(c["folds"].items()) + [("pooled", c["pooled"])]:
            for metric in HEADLINE_METRICS:
                s = metrics[metric]
                rows.append({"kind": "fold" if fold != "pooled" else "pooled", "config": name, "fold": fold,
                             "metric": metric, "value": s["value"], "lo": s["ci"][0], "hi": s["ci"][1], "n": s["n"]})
    for pair in report["pairs"]:
        for metric in HEADLINE_METRICS:
            r = pair["comparison"][metric]
            rows.append({"kind": "difference", "config": f"{pair['a']} - {pair['b']}", "fold": "pooled",
                         "metric": metric, "value": r["diff"], "lo": r["ci"][0], "hi": r["ci"][1], "n": r["n"],
                         "mcnemar_p": r["mcnemar"]["p_value"], "a_only": r["mcnemar"]["a_only"],
                         "b_only": r["mcnemar"]["b_only"], "bootstrap_p": r["p_value"],
                         "test_p": r.get("p_value_test"), "holm_p": r.get("holm_p")})
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def write_json(report: Mapping, path: str) -> str:
    """The whole report as JSON (NaN as null). Returns ``path``."""
    atomic_write_json(path, json_safe(report), indent=1)
    return path


def plot(report: Mapping, path: str) -> str:
    """Per-fold and pooled CorLoc (left: authors', right: top-1) of each config with their intervals. Returns
    ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["configs"])
    folds = sorted({f for c in report["configs"].values() for f in c["folds"]})
    positions = list(range(len(folds))) + [len(folds) + 0.5]
    labels = [f"fold {f}" for f in folds] + ["pooled"]
    fig, axes = plt.subplots(1, len(HEADLINE_METRICS), figsize=(5 + 1.2 * len(positions), 4), sharey=True)
    width = 0.8 / max(len(names), 1)
    for ax, metric in zip(np.atleast_1d(axes), HEADLINE_METRICS):
        for k, name in enumerate(names):
            c = report["configs"][name]
            summaries = [c["folds"].get(f, {}).get(metric) for f in folds] + [c["pooled"][metric]]
            xs = [p + (k - (len(names) - 1) / 2) * width for p, s in zip(positions, summaries) if s]
            values = np.array([s["value"] for s in summaries if s], float)
            lo = np.array([s["ci"][0] for s in summaries if s], float)
            hi = np.array([s["ci"][1] for s in summaries if s], float)
            ax.errorbar(xs, values, yerr=[np.nan_to_num(values - lo), np.nan_to_num(hi - values)], fmt="o",
                        capsize=3, label=name)
        ax.axvline(len(folds) - 0.25, color="0.8", lw=1)
        ax.set_xticks(positions)
        ax.set_xticklabels(labels)
        ax.set_title(metric.replace("_", " "))
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(f"% of images with a mass ({round(100 * report['settings']['level'])}% CI)")
    np.atleast_1d(axes)[-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_all(report: Mapping, out: str, stem: str = "crossval") -> Dict[str, str]:
    """Write ``<out>/<stem>.{md,json,csv,png}``. Returns {kind: path}."""
    os.makedirs(out, exist_ok=True)
    md = os.path.join(out, f"{stem}.md")
    with atomic_open(md) as f:
        f.write(markdown(report))
    return {"markdown": md, "json": write_json(report, os.path.join(out, f"{stem}.json")),
            "csv": write_csv(report, os.path.join(out, f"{stem}.csv")),
            "plot": plot(report, os.path.join(out, f"{stem}.png"))}


def pair_names(names: Sequence[str]):
    """The (a, b) pairs the report compares: every later config minus every earlier one."""
    return [(b, a) for a, b in combinations(names, 2)]
