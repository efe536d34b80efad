"""Text tables of an evaluation report, in Detectron2's style (tabulate, pipe format)."""
import math

from tabulate import tabulate


def format_ci(value, lo, hi, digits=2):
    """``"80.00 [76.00, 83.75]"``; ``"-"`` for an undefined value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _cell(metrics, name, digits=2):
    m = metrics.get(name)
    return format_ci(m["value"], m["lo"], m["hi"], digits) if m else "-"


def corloc_table(report):
    """CorLoc (percent, with CI) per definition (rows) and class (columns)."""
    s, m, c = report["settings"], report["metrics"], report["counts"]
    rows = []
    for prefix, name in (("CorLoc", f"any box, score >= {s['tau']:g}"), ("CorLoc_top1", "top-1 box")):
        rows.append([name, _cell(m, prefix), _cell(m, prefix + "-benign"), _cell(m, prefix + "-malignant")])
    level = round(100 * s["ci_level"])
    headers = [f"CorLoc % (IoU > {s['iou_thresh']:g}), {level}% CI", f"all ({c['mass_images']})",
               f"benign ({c['benign_with_box']})", f"malignant ({c['malignant_with_box']})"]
    return tabulate(rows, headers=headers, tablefmt="pipe", stralign="left")


def diagnosis_table(report):
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


def confusion_table(report):
    """The N/B/M confusion matrix (rows true, columns predicted)."""
    d = report["diagnosis"]
    rows = [[f"true {name}", *counts] for name, counts in zip(d["labels"], d["confusion_matrix"])]
    return tabulate(rows, headers=["", *[f"pred {name}" for name in d["labels"]]], tablefmt="pipe",
                    numalign="left")
