"""Every fold model of a cross-validation row, also tested zero-shot on another site (``--external breast_test``).

A K-fold row is K models, each trained without its fold. On the pool they are pooled (each image tested once); on
another site each of them sees the *same* images, so they are not pooled: a row's external score is the mean over
its K models (with the lowest and highest), and two rows are compared model by model, fold k against fold k (both
trained on the same images), with :func:`wssdl_d2.evaluation.paired.compare_runs` (paired bootstrap, McNemar's
exact p). How many of the K differences favour each row, and how many are significant, says whether a difference
holds beyond the one model.

A fold model's external outcomes are written beside it: ``<run folder>/<dataset>/inference/corloc_per_image.csv``
(and ``corloc.json``), evaluated from ``<run folder>/config.yaml`` and ``model_final.pth``; they are reused while they
are newer than the model.
"""
import logging
import os
from collections import OrderedDict
from itertools import combinations
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ..config import merge_config
from ..evaluation.metrics import estimate
from ..evaluation.paired import compare_runs
from ..evaluation.results_io import ResultsError, read_per_image
from ..evaluation.run_dir import RunDir
from .runs import evaluate_model

logger = logging.getLogger(__name__)

#: The metrics the external section shows, per model and as the mean over a row's models.
EXTERNAL_METRICS = ("CorLoc", "CorLoc_top1", "AUC_BvsM")


def external_folder(run_dir: str, dataset: str) -> str:
    """Where a fold model's outcomes on ``dataset`` live: ``<run_dir>/<dataset>`` (its ``inference/`` inside)."""
    return RunDir(run_dir).on(dataset).path


def evaluate_run_on(run_dir: str, dataset: str, eval_fn: Callable = evaluate_model,
                    weights: Optional[str] = None) -> Tuple[Dict[str, np.ndarray], bool]:
    """Test the model of ``run_dir`` (its ``config.yaml`` with DATASETS.TEST set to the registered ``dataset``, and
    ``weights``, default ``<run_dir>/model_final.pth``) on ``dataset`` into ``<run_dir>/<dataset>/inference``,
    unless outcomes newer than the weights are there. Returns (per-image columns (N,), whether it evaluated).
    Raises ResultsError naming the config or model that is missing."""
    run = RunDir(run_dir)
    weights = weights or run.final_weights
    config = run.config
    target = run.on(dataset)
    per_image = target.per_image
    fresh = os.path.isfile(per_image) and (not os.path.isfile(weights)
                                           or os.path.getmtime(per_image) >= os.path.getmtime(weights))
    if not fresh:
        missing = [p for p in (weights, config) if not os.path.isfile(p)]
        if missing:
            raise ResultsError(f"{', '.join(missing)} not found; a model is tested on {dataset} from its run "
                               "folder's config.yaml and its weights")
        cfg = merge_config(config, ["DATASETS.TEST", f"({dataset!r},)"])
        cfg.freeze()
        eval_fn(cfg, weights, target.path)
    return read_per_image(target.inference), not fresh


def evaluate_external(run_dirs: Mapping[str, Mapping[int, str]], dataset: str,
                      eval_fn: Callable = evaluate_model, log=print) -> Dict[str, Dict[int, Dict[str, np.ndarray]]]:
    """Test every fold model ``{row: {fold: run folder}}`` on the registered ``dataset`` (each folder holds the run's
    ``config.yaml`` and ``model_final.pth``; :func:`evaluate_run_on`); outcomes newer than the model are reused.
    Returns {row: {fold: per-image columns (N,)}}. Raises ResultsError naming the row, fold and missing file."""
    out = {}
    for row, folders in run_dirs.items():
        out[row] = {}
        for fold, run_dir in sorted(folders.items()):
            try:
                out[row][fold], evaluated = evaluate_run_on(run_dir, dataset, eval_fn)
            except ResultsError as err:
                raise ResultsError(f"{row} fold {fold}: {err}") from None
            if evaluated:
                log(f"[crossval] {row} fold {fold}: tested on {dataset}")
    return out


def _metrics(columns) -> Dict[str, float]:
    """The point values of :data:`EXTERNAL_METRICS` of one model's outcomes (no bootstrap)."""
    indices = np.arange(len(columns["file_name"]))[None, :]
    values = estimate(columns, indices)
    return {m: float(values[m][0]) for m in EXTERNAL_METRICS}


def external_section(outcomes: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]], dataset: str,
                     num_samples: int = 2000, seed: int = 0, level: float = 0.95) -> Dict:
    """The report section of one external dataset from :func:`evaluate_external`'s outcomes.

    Keys: ``dataset``; ``configs`` {row: {folds: {fold: metric -> value}, mean / min / max: metric -> value}};
    ``pairs`` [{a, b, folds: {fold: {diff, ci, p_value}} (CorLoc), mean_diff, a_better, b_better, a_significant,
    b_significant}] for every pair (later row minus earlier), fold k against fold k on the folds both have."""
    names = list(outcomes)
    section = {"dataset": dataset, "configs": OrderedDict(), "pairs": []}
    for name in names:
        per_fold = {int(f): _metrics(cols) for f, cols in sorted(outcomes[name].items())}
        table = np.array([[v[m] for m in EXTERNAL_METRICS] for v in per_fold.values()], float)
        section["configs"][name] = {
            "folds": per_fold,
            "mean": dict(zip(EXTERNAL_METRICS, np.nanmean(table, axis=0).tolist())),
            "min": dict(zip(EXTERNAL_METRICS, np.nanmin(table, axis=0).tolist())),
            "max": dict(zip(EXTERNAL_METRICS, np.nanmax(table, axis=0).tolist())),
        }
    alpha = 1 - level
    for first, second in combinations(names, 2):
        folds = sorted(set(outcomes[first]) & set(outcomes[second]))
        per_fold = {}
        for fold in folds:
            r = compare_runs(outcomes[second][fold], outcomes[first][fold], num_samples, seed, level,
                             name_a=f"{second} fold {fold}", name_b=f"{first} fold {fold}")["CorLoc"]
            p = r["mcnemar"]["p_value"] if r["mcnemar"] else r["p_value"]
            per_fold[int(fold)] = {"diff": r["diff"], "ci": r["ci"], "p_value": p}
        diffs = [v["diff"] for v in per_fold.values()]
        section["pairs"].append({
            "a": second, "b": first, "folds": per_fold,
            "mean_diff": float(np.mean(diffs)) if diffs else float("nan"),
            "a_better": sum(d > 0 for d in diffs), "b_better": sum(d < 0 for d in diffs),
            "a_significant": sum(v["diff"] > 0 and v["p_value"] < alpha for v in per_fold.values()),
            "b_significant": sum(v["diff"] < 0 and v["p_value"] < alpha for v in per_fold.values()),
        })
    return section


def external_markdown(section: Mapping, level: Optional[float] = 0.95) -> str:
    """Two Markdown tables of one external section: each row's models (mean [lowest, highest] and per fold) and
    each pair's model-by-model CorLoc differences."""
    names = list(section["configs"])
    folds = sorted({int(f) for c in section["configs"].values() for f in c["folds"]})
    dataset = section["dataset"]
    lines = [f"Zero-shot on {dataset} (each fold model tested on all of it; mean of the fold models "
             "[lowest, highest]):", "",
             "| config | CorLoc | CorLoc top-1 | AUC B vs M | " + " | ".join(f"fold {f}" for f in folds) + " |",
             "|---|---|---|---|" + "---|" * len(folds)]
    for name in names:
        c = section["configs"][name]
        cells = [f"{c['mean'][m]:.1f} [{c['min'][m]:.1f}, {c['max'][m]:.1f}]" for m in ("CorLoc", "CorLoc_top1")]
        cells.append(f"{c['mean']['AUC_BvsM']:.3f}")
        per_fold = [f"{c['folds'][f]['CorLoc']:.1f}" if f in c["folds"] else "-" for f in folds]
        lines.append(f"| {name} | " + " | ".join(cells + per_fold) + " |")
    if section["pairs"]:
        lines += ["", f"| difference on {dataset}, model by model | mean CorLoc difference | "
                      + " | ".join(f"fold {f} (McNemar p)" for f in folds)
                      + f" | models better (p < {1 - level:.2g}) |", "|---|---|" + "---|" * len(folds) + "---|"]
        for pair in section["pairs"]:
            per_fold = [f"{pair['folds'][f]['diff']:+.1f} ({pair['folds'][f]['p_value']:.2g})"
                        if f in pair["folds"] else "-" for f in folds]
            lines.append(f"| {pair['a']} - {pair['b']} | {pair['mean_diff']:+.1f} | " + " | ".join(per_fold)
                         + f" | {pair['a_better']} ({pair['a_significant']}) vs {pair['b_better']} "
                           f"({pair['b_significant']}) |")
    return "\n".join(lines) + "\n"
