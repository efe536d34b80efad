"""Paired comparisons of evaluated run folders: two runs (``tools/compare.py``), or several runs each against a
reference (``tools/results_table.py``). The statistics are :func:`.paired.compare_runs`'s; this module finds
and reads the runs (:mod:`.runs`) and puts the results together.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import results_io
from .paired import compare_runs
from .runs import boxed_images, last_ap50, read_reports, run_folder, run_name

#: Metrics of a results-table row: (value, lo, hi), NaN where the report lacks the metric.
ROW_METRICS = ("CorLoc", "CorLoc_top1", "AUC_BvsM", "FP_per_normal", "Accuracy")


def compare_folders(path_a: str, path_b: str, names: Optional[Sequence[str]] = None, samples: int = 2000,
                    seed: int = 0, level: float = 0.95) -> Dict[str, Any]:
    """Compare two evaluated runs (run folders, their ``inference/`` folders or files in them) on their common
    test images.

    Returns {"a" / "b": {"name", "folder": results folder}, "images": number of paired images,
    "reports": [corloc.json of A or None, of B or None], "metrics": :func:`.paired.compare_runs`'s result
    (metric -> {"a", "b", "diff", "ci", "p_value", "mcnemar", "n"}; CorLoc in percent)}. Names default to the
    run folders' names (``"A: x"`` / ``"B: x"`` when equal). Raises ResultsError naming the images when the runs
    were not evaluated on the same images, or the setting when their tau / IoU threshold differ."""
    folders = [results_io.resolve_results_dir(path_a), results_io.resolve_results_dir(path_b)]
    name_a, name_b = names or [run_name(f) for f in folders]
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    reports = read_reports(folders, (name_a, name_b))
    columns_a, columns_b = (results_io.read_per_image(f) for f in folders)
    metrics = compare_runs(columns_a, columns_b, samples, seed, level, name_a, name_b)
    return {"a": {"name": name_a, "folder": folders[0]}, "b": {"name": name_b, "folder": folders[1]},
            "images": len(columns_a["file_name"]), "reports": reports, "metrics": metrics}


def _metric(report: Dict[str, Any], name: str) -> Tuple[float, float, float]:
    m = report["metrics"].get(name)
    return (m["value"], m["lo"], m["hi"]) if m else (math.nan, math.nan, math.nan)


def reference_rows(runs: Sequence[Tuple[str, str, Optional[int]]], reference: str, samples: int = 2000,
                   seed: int = 0) -> List[Dict[str, Any]]:
    """The rows of a results table: ``runs`` is a list of (name, run folder, boxed images or None), ``reference``
    one of the names. One dict per run, in order: {"name", "folder": run folder, "boxes", "AP50" (percent or
    None, :func:`.runs.last_ap50`), each of ``ROW_METRICS``: (value, lo, hi)}, and for every run but the
    reference "vs_reference": its CorLoc paired against the reference on the same images {"diff" (points),
    "ci": (lo, hi), "p_bootstrap", "p_mcnemar" (None when no image is discordant)}."""
    loaded = {}
    for name, folder, boxes in runs:
        results = results_io.resolve_results_dir(folder)
        loaded[name] = (run_folder(results), results_io.read_report(results), results_io.read_per_image(results),
                        boxes)
    _, _, ref_columns, _ = loaded[reference]
    rows = []
    for name, (folder, report, columns, boxes) in loaded.items():
        row = {"name": name, "folder": folder, "boxes": boxes, "AP50": last_ap50(folder)}
        row.update({metric: _metric(report, metric) for metric in ROW_METRICS})
        if name != reference:
            paired = compare_runs(columns, ref_columns, samples, seed, name_a=name, name_b=reference)["CorLoc"]
            row["vs_reference"] = {"diff": paired["diff"], "ci": paired["ci"], "p_bootstrap": paired["p_value"],
                                   "p_mcnemar": (paired["mcnemar"] or {}).get("p_value")}
        rows.append(row)
    return rows


def boxes_series(rows: Sequence[Dict[str, Any]], series: Sequence[Sequence[str]]) -> Dict[str, List[tuple]]:
    """CorLoc against the number of images with boxes drawn by a person, for :func:`.curves.plot_series`:
    ``series`` is a list of [label, run name, run name, ...] over the names of ``rows``
    (:func:`reference_rows`). A row's count is its ``boxes``, else counted from its run's config
    (:func:`.runs.boxed_images`). Returns label -> [(boxes, CorLoc, lo, hi)] (percent)."""
    by_name = {row["name"]: row for row in rows}
    out = {}
    for label, *names in series:
        points = []
        for name in names:
            row = by_name[name]
            boxes = row["boxes"] if row["boxes"] is not None else boxed_images(row["folder"])
            points.append((boxes,) + tuple(row["CorLoc"]))
        out[label] = points
    return out
