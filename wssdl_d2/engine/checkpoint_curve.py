"""The validation curve of training runs: every checkpoint a run saved, evaluated once (``tools/eval_checkpoints.py``).

A run is a training output folder: its ``config.yaml`` (written by ``tools/train_net.py``) is the config and
``model_<iter>.pth`` / ``model_final.pth`` are its checkpoints. Each checkpoint is evaluated on ``DATASETS.TEST``
into ``RUN/curve/iter_<NNNNNNN>/`` (the usual ``inference/`` files plus ``results.json``); one already evaluated
there is read back instead, so an interrupted curve resumes.
"""
import csv
import glob
import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Tuple

from detectron2.config import CfgNode
from detectron2.evaluation.testing import flatten_results_dict

from ..evaluation.curves import plot_series, point_from_results
from ..evaluation.results_io import json_safe
from ..utils.atomic import atomic_open, atomic_write_json
from .evaluate import evaluate_weights

logger = logging.getLogger(__name__)

#: Columns of ``curve.csv``; CorLoc* in percent, AP in percent, FP_per_normal per image.
COLUMNS = ("run", "iteration", "checkpoint", "CorLoc", "CorLoc_lo", "CorLoc_hi", "CorLoc_top1", "CorLoc_top1_lo",
           "CorLoc_top1_hi", "AP50", "AP", "Accuracy", "AUC_BvsM", "FP_per_normal")


def find_checkpoints(run_dir: str, max_iter: int) -> List[Tuple[int, str]]:
    """``[(iteration, path)]`` of a run, sorted; ``iteration`` counts finished iterations (model_0000099.pth was
    saved after 100). ``model_final.pth`` gets ``max_iter`` (the run's SOLVER.MAX_ITER) and is dropped when a
    periodic file has it."""
    found = {}
    for path in glob.glob(os.path.join(run_dir, "model_*.pth")):
        match = re.fullmatch(r"model_(\d+)\.pth", os.path.basename(path))
        if match:
            found[int(match.group(1)) + 1] = path
    final = os.path.join(run_dir, "model_final.pth")
    if os.path.isfile(final):
        found.setdefault(max_iter, final)
    return sorted(found.items())


def load_run_config(run_dir: str, opts: Iterable = ()) -> CfgNode:
    """The config a run trained with (``RUN/config.yaml``) with the KEY VALUE ``opts`` on top, frozen, its
    datasets registered. Raises FileNotFoundError naming the folder when it has no config.yaml."""
    from ..config import load_config

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: no config.yaml (is this a tools/train_net.py output folder?)")
    return load_config(path, opts)


def evaluate_checkpoint(cfg: CfgNode, run_dir: str, iteration: int, checkpoint: str) -> Dict[str, Any]:
    """Flat results (``{"bbox/AP50": v, "corloc/CorLoc": v, ...}``) of one checkpoint evaluated with ``cfg``
    (:func:`wssdl_d2.engine.evaluate_weights`, weights-only loading) into ``RUN/curve/iter_<N>/``; read back
    from its ``results.json`` when that exists."""
    folder = os.path.join(run_dir, "curve", f"iter_{iteration:07d}")
    done = os.path.join(folder, "results.json")
    if os.path.isfile(done):
        with open(done) as f:
            return json.load(f)["results"]
    results = json_safe(flatten_results_dict(evaluate_weights(cfg, checkpoint, folder)))
    atomic_write_json(done, {"checkpoint": os.path.abspath(checkpoint), "iteration": iteration, "results": results},
                      indent=1)
    return results


def curve_row(run: str, iteration: int, checkpoint: str, results: Mapping[str, Any]) -> Dict[str, Any]:
    """One ``curve.csv`` row (``COLUMNS``) from a checkpoint's flat results; None where a metric is absent."""
    row = {"run": run, "iteration": iteration, "checkpoint": os.path.basename(checkpoint)}
    for column in COLUMNS[3:]:
        row[column] = results.get(f"bbox/{column}" if column in ("AP50", "AP") else f"corloc/{column}")
    return row


def checkpoint_curves(runs: Mapping[str, str], out: str, opts: Iterable = ()) -> List[Dict[str, Any]]:
    """Evaluate every checkpoint of every run (name -> run folder; the runs' configs with the KEY VALUE ``opts``
    on top) and write ``curve.csv`` (one row per run and checkpoint) and ``curve.png`` (CorLoc with its 95% band
    per run; for a single run CorLoc and top-1 CorLoc) into ``out``. Logs each checkpoint's result. Returns the
    rows. Raises FileNotFoundError naming a run folder without config.yaml or without checkpoints."""
    opts = list(opts)
    rows, series, test_set = [], {}, ""
    for name, run_dir in runs.items():
        cfg = load_run_config(run_dir, opts)
        test_set = test_set or (cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "")
        checkpoints = find_checkpoints(run_dir, cfg.SOLVER.MAX_ITER)
        if not checkpoints:
            raise FileNotFoundError(f"{run_dir}: no model_*.pth checkpoint to evaluate")
        for iteration, checkpoint in checkpoints:
            results = evaluate_checkpoint(cfg, run_dir, iteration, checkpoint)
            row = curve_row(name, iteration, checkpoint, results)
            rows.append(row)
            logger.info("%s iter %d: CorLoc %s [%s, %s] AP50 %s", name, iteration, row["CorLoc"], row["CorLoc_lo"],
                        row["CorLoc_hi"], row["AP50"])
            if len(runs) > 1:  # one line per run (top-1 is in curve.csv): two per run made colours repeat
                series.setdefault(name, []).append(point_from_results(iteration, results, "CorLoc"))
            else:
                for metric, label in (("CorLoc", "CorLoc"), ("CorLoc_top1", "top-1 CorLoc")):
                    series.setdefault(label, []).append(point_from_results(iteration, results, metric))
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "curve.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot_series(series, os.path.join(out, "curve.png"), xlabel="training iteration",
                title=f"{test_set}: CorLoc vs iteration (95% CI)")
    return rows
