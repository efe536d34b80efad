"""Text tables of evaluation reports and of comparisons between runs, in Detectron2's style (tabulate, pipe
format)."""
import math
from typing import Any, Dict, Mapping, Optional, Sequence

from tabulate import tabulate


def format_ci(value: Optional[float], lo: Optional[float], hi: Optional[float], digits: int = 2) -> str:
    """``"80.00 [76.00, 83.75]"``; ``"-"`` for an undefined value, no brackets without an interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _cell(metrics, name, digits=2):
    m = metrics.get(name)
    return format_ci(m["value"], m["lo"], m["hi"], digits) if m else "-"


def corloc_table(report: Mapping[str, Any]) -> str:
    """CorLoc (percent, with CI) per definition (rows) and class (columns)."""
    s, m, c = report["settings"], report["metrics"], report["counts"]
    rows = []
    for prefix, name in (("CorLoc", f"any box, score >= {s['tau']:g}"), ("CorLoc_top1", "top-1 box")):
        rows.append([name, _cell(m, prefix), _cell(m, prefix + "-benign"), _cell(m, prefix + "-malignant")])
    level = round(100 * s["ci_level"])
    headers = [f"CorLoc % (IoU > {s['iou_thresh']:g}), {level}% CI", f"all ({c['mass_images']})",
               f"benign ({c['benign_with_box']})", f"malignant ({c['malignant_with_box']})"]
    return tabulate(rows, headers=headers, tablefmt="pipe", stralign="left")


def diagnosis_table(report: Mapping[str, Any]) -> str:
    """False positives, FROC summary, AUCs and accuracy, with CIs where there are some."""
    m, f, c, s = report["metrics"], report["froc"], report["counts"], report["settings"]
    rows = [
        [f"FP per normal image (score >= {s['tau']:g}, {c['normal']} images)", _cell(m, "FP_per_normal", 3)],
        [f"FROC sensitivity / FP per image at score >= {s['tau']:g}",
         f"{f['at_tau']['sensitivity']:.3f} / {f['at_tau']['fppi']:.3f}"],
        ["FROC mean sensitivity at 1/8..8 FP per image", f"{f['mean_sensitivity']:.3f}"],
        [f"AUC malignant vs benign ({c['malignant']} / {c['benign']} images)", _cell(m, "AUC_BvsM", 3)],
        [f"AUC mass vs normal ({c['benign'] + c['malignant']} / {c['normal']} images)", _cell(m, "AUC_NvsMass", 3)],
        [f"Accuracy N/B/M % ({c['images']} images)", _cell(m, "Accuracy")],
    ]
    return tabulate(rows, headers=["metric", f"value [{round(100 * s['ci_level'])}% CI]"], tablefmt="pipe",
                    stralign="left")


def confusion_table(report: Mapping[str, Any]) -> str:
    """The N/B/M confusion matrix (rows true, columns predicted)."""
    d = report["diagnosis"]
    rows = [[f"true {name}", *counts] for name, counts in zip(d["labels"], d["confusion_matrix"])]
    return tabulate(rows, headers=["", *[f"pred {name}" for name in d["labels"]]], tablefmt="pipe",
                    numalign="left")


def comparison_table(comparison: Dict[str, Any], level: float = 0.95) -> str:
    """The paired comparison of two runs (:func:`.comparison.compare_folders`), one row per metric: images, A, B,
    A - B with its CI, bootstrap p, McNemar's p with the discordant images (A only / B only)."""
    rows = []
    for metric, r in comparison["metrics"].items():
        digits = 3 if metric.startswith(("AUC", "FP")) else 2
        mcnemar = r["mcnemar"]
        mc = "-" if mcnemar is None else f"{mcnemar['p_value']:.3g} ({mcnemar['a_only']}/{mcnemar['b_only']})"
        rows.append([metric, str(r["n"]), format_ci(r["a"], None, None, digits), format_ci(r["b"], None, None, digits),
                     format_ci(r["diff"], *r["ci"], digits), f"{r['p_value']:.3g}", mc])
    headers = ["metric", "images", comparison["a"]["name"], comparison["b"]["name"],
               f"A - B [{round(100 * level)}% CI]", "bootstrap p", "McNemar p (A only / B only)"]
    return tabulate(rows, headers=headers, tablefmt="pipe", stralign="left", disable_numparse=True)


def results_table(rows: Sequence[Dict[str, Any]], reference: str) -> str:
    """The paper-style table of :func:`.comparison.reference_rows`: one row per run with CorLoc and top-1 CorLoc
    (percent, 95% CI), AP50, AUC benign vs malignant, FP per normal image, and its CorLoc difference with the
    reference (points, CI; bootstrap / McNemar p)."""
    table = []
    for row in rows:
        paired = row.get("vs_reference")
        if paired:
            versus = f"{format_ci(paired['diff'], *paired['ci'], 1)}; p {paired['p_bootstrap']:.3g}"
            if paired["p_mcnemar"] is not None:
                versus += f" / {paired['p_mcnemar']:.2g}"
        else:
            versus = "(reference)"
        ap50 = "-" if row["AP50"] is None else f"{row['AP50']:.1f}"
        table.append([row["name"], format_ci(*row["CorLoc"], 1), format_ci(*row["CorLoc_top1"], 1), ap50,
                      format_ci(*row["AUC_BvsM"], 3), format_ci(*row["FP_per_normal"], 3), versus])
    headers = ["run", "CorLoc % [95% CI]", "top-1 CorLoc %", "AP50", "AUC B vs M", "FP / normal image",
               f"CorLoc vs {reference} [95% CI]; bootstrap / McNemar p"]
    return tabulate(table, headers=headers, tablefmt="pipe", stralign="left", disable_numparse=True)
