#!/usr/bin/env python
"""Evaluate every checkpoint a training run saved: the validation curve (CorLoc with CI and AP50 vs iteration).

    python tools/eval_checkpoints.py output/busi_short/strong_only
    python tools/eval_checkpoints.py RUN_A RUN_B DATASETS.TEST "('busi_val',)" --names strong joint --out output/curves

Each RUN is a training output folder: its ``config.yaml`` (written by ``tools/train_net.py``) is the config, and
``model_<iter>.pth`` / ``model_final.pth`` are the checkpoints (the final one is skipped when a periodic checkpoint
of the same iteration exists). Trailing ``KEY VALUE`` pairs override the config as in ``tools/train_net.py``.
Each checkpoint is evaluated on ``DATASETS.TEST`` into ``RUN/curve/iter_<NNNNNNN>/`` (the usual ``inference/``
files plus ``results.json``); a checkpoint already evaluated there is not evaluated again, so the tool resumes.
Writes ``curve.csv`` (one row per run and checkpoint) and ``curve.png`` (CorLoc with 95% bands, one line per run;
with a single run also top-1 CorLoc) into ``--out`` (default: ``RUN/curve`` for a single run).
"""
import argparse
import csv
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wssdl_d2  # noqa: E402,F401  (registers the project's components)
from detectron2.config import get_cfg  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from wssdl_d2.data import default_dataset_root, register_datasets_under  # noqa: E402
from wssdl_d2.engine import evaluate_weights  # noqa: E402
from wssdl_d2.evaluation.curves import flatten_results, plot_series, point_from_results  # noqa: E402
from wssdl_d2.evaluation.results_io import json_safe  # noqa: E402
from wssdl_d2.utils.atomic import atomic_open, atomic_write_json  # noqa: E402
from wssdl_d2.utils.cli import run_main, split_trailing_opts  # noqa: E402

COLUMNS = ("run", "iteration", "checkpoint", "CorLoc", "CorLoc_lo", "CorLoc_hi", "CorLoc_top1", "CorLoc_top1_lo",
           "CorLoc_top1_hi", "AP50", "AP", "Accuracy", "AUC_BvsM", "FP_per_normal")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="training output folders (holding config.yaml and model_*.pth), "
                        "then optional KEY VALUE config overrides")
    parser.add_argument("--names", nargs="+", help="one name per run (default: the folder names)")
    parser.add_argument("--out", help="folder for curve.csv / curve.png (default RUN/curve for one run)")
    args = parser.parse_args(argv)
    args.opts = []
    split_trailing_opts(args, "runs")  # runs holds the folders, then the KEY VALUE pairs
    folders = args.runs
    missing = [f for f in folders if not os.path.isdir(f)]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)} (config overrides are KEY VALUE pairs after the folders)")
    if not folders:
        parser.error("no run folder given (folders that exist, holding config.yaml)")
    if len(args.opts) % 2:
        parser.error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    if args.names and len(args.names) != len(folders):
        parser.error(f"--names gives {len(args.names)} names for {len(folders)} runs")
    if args.out is None and len(folders) > 1:
        parser.error("--out is needed when several runs are given")
    return args


def find_checkpoints(run_dir, max_iter):
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


def load_run_config(run_dir, opts):
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise SystemExit(f"{run_dir}: no config.yaml (is this a tools/train_net.py output folder?)")
    cfg = get_cfg()
    wssdl_d2.add_wssdl_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    wssdl_d2.config.resolve_device(cfg)
    return cfg


def evaluate_checkpoint(run_cfg, run_dir, iteration, checkpoint):
    """Results (flat dict) of one checkpoint, evaluated with ``run_cfg`` (the run's config with the command line's
    overrides), from ``RUN/curve/iter_<N>/results.json`` when already there."""
    folder = os.path.join(run_dir, "curve", f"iter_{iteration:07d}")
    done = os.path.join(folder, "results.json")
    if os.path.isfile(done):
        with open(done) as f:
            return json.load(f)["results"]
    results = json_safe(flatten_results(evaluate_weights(run_cfg, checkpoint, folder)))
    atomic_write_json(done, {"checkpoint": os.path.abspath(checkpoint), "iteration": iteration, "results": results},
                      indent=1)
    return results


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="wssdl_d2")
    setup_logger()
    names = args.names or [os.path.basename(os.path.normpath(r)) for r in args.runs]
    out = args.out or os.path.join(args.runs[0], "curve")
    rows, series = [], {}
    for name, run_dir in zip(names, args.runs):
        cfg = load_run_config(run_dir, args.opts)
        register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
        checkpoints = find_checkpoints(run_dir, cfg.SOLVER.MAX_ITER)
        if not checkpoints:
            raise SystemExit(f"{run_dir}: no model_*.pth checkpoint to evaluate")
        for iteration, checkpoint in checkpoints:
            results = evaluate_checkpoint(cfg, run_dir, iteration, checkpoint)
            row = {"run": name, "iteration": iteration, "checkpoint": os.path.basename(checkpoint)}
            for column in COLUMNS[3:]:
                key = column if column in ("AP50", "AP") else column.replace("_lo", "").replace("_hi", "")
                suffix = column[len(key):]
                source = f"bbox/{key}" if column in ("AP50", "AP") else f"corloc/{key}{suffix}"
                row[column] = results.get(source)
            rows.append(row)
            print(f"{name} iter {iteration}: CorLoc {row['CorLoc']} [{row['CorLoc_lo']}, {row['CorLoc_hi']}] "
                  f"AP50 {row['AP50']}")
            if len(args.runs) > 1:  # one line per run (top-1 is in curve.csv): two per run made colours repeat
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
                title=f"{cfg.DATASETS.TEST[0]}: CorLoc vs iteration (95% CI)")
    print(f"wrote {os.path.join(out, 'curve.csv')} and curve.png")


if __name__ == "__main__":
    run_main(main)
