"""One cross-validation run: a config trained on the training part of fold k and evaluated on the held-out fold k.

A run lives in ``<out>/<config name>/fold<k>/`` (:class:`~wssdl_d2.evaluation.run_dir.RunDir`: Detectron2's
OUTPUT_DIR, checkpoints, ``log.txt``, ``metrics.json``; the evaluation's ``inference/corloc_per_image.csv`` and
``corloc.json``) with the state file ``crossval_state.json`` of :mod:`wssdl_d2.runs` (its statuses, the config
fingerprint that refuses a folder started with another config, and the training and evaluation,
:func:`wssdl_d2.runs.train_and_evaluate`). This module maps a config to a fold's datasets and keeps the names the
tools and tests use (re-exported from :mod:`wssdl_d2.runs`).
"""
import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog

from ..config import merge_config, resolve_device
from ..data.folds import fold_dataset_name
from ..errors import UserError
from ..runs.state import RUN_STATE_FILE as STATE_FILE
from ..runs.state import RunState, StateError, config_fingerprint, config_matches, fingerprint_before_new_keys
from ..runs.train import (PERIODIC_CHECKPOINT_RE, evaluate_model, remove_periodic_checkpoints, run_log,
                          train_and_evaluate, train_model, training_config)

__all__ = ["CrossValError", "PERIODIC_CHECKPOINT_RE", "RunSpec", "STATE_FILE", "config_fingerprint", "config_matches",
           "evaluate_model", "fingerprint_before_new_keys", "fold_config", "fold_dataset_for", "read_state",
           "remove_periodic_checkpoints", "run_config", "run_fold", "run_log", "train_model", "training_config"]
#: A prepared split name at the end of a dataset name: busi_train_strong_20 -> train_strong_20.
SPLIT_RE = re.compile(r"(?:^|_)(train_strong_\d+|train_weak_\d+|train_all|val|test)$")


class CrossValError(UserError, ValueError):
    """A cross-validation setup or run folder that cannot be used; the message names it and the problem."""


@dataclass(frozen=True)
class RunSpec:
    """A config to cross-validate: ``name`` (its folder and its label in the report) and its YAML file."""

    name: str
    config_file: str


def fold_dataset_for(dataset: str, data: str, fold: int, strong_percent: Optional[int] = None,
                     inner: bool = False) -> str:
    """The fold's dataset of the same kind: ("busi_train_strong_20", "busi", 3) -> "busi_fold3_train_strong_20";
    with ``strong_percent`` 10, train_strong_P / train_weak_P become train_strong_10 / train_weak_10 (train_all,
    val, test and train_strong_100 - every image boxed, the fully supervised row - stay). Raises CrossValError for
    a name that does not end in a prepared split (train_strong_P, train_weak_P, train_all, val, test). With
    ``inner``, the fold's inner split instead (``inner_train_strong_20``, ..., ``inner_val`` for val and test):
    where settings are chosen (:mod:`wssdl_d2.data.folds`)."""
    match = SPLIT_RE.search(dataset)
    if not match:
        raise CrossValError(f"dataset {dataset!r}: not a prepared split (a name ending in train_strong_P, "
                            "train_weak_P, train_all, val or test), so it has no cross-validation counterpart")
    split = match.group(1)
    part = re.match(r"^(train_strong|train_weak)_(\d+)$", split)
    if strong_percent is not None and part and int(part.group(2)) < 100:
        split = f"{part.group(1)}_{int(strong_percent)}"
    if inner:  # the fold's inner split: its training part's inner_train_* and inner_val, never the held-out fold
        split = "inner_val" if split in ("val", "test") else f"inner_{split}"
    return fold_dataset_name(data, fold, split)


def fold_config(spec: RunSpec, data: str, fold: int, opts: Sequence[str], output_dir: str,
                strong_percent: Optional[int] = None, inner: bool = False):
    """The run's frozen config: ``spec.config_file``, then ``opts`` (KEY VALUE), then DATASETS.TRAIN mapped to the
    fold's datasets (:func:`fold_dataset_for`, with ``strong_percent``), DATASETS.TEST = the held-out fold (``<data>_fold<k>_val``) and
    OUTPUT_DIR = ``output_dir``. Raises CrossValError naming the config file for a bad file, override or dataset."""
    if not os.path.isfile(spec.config_file):
        raise CrossValError(f"{spec.config_file}: config file not found")
    try:
        cfg = merge_config(spec.config_file, opts)
    except ValueError as err:
        raise CrossValError(f"{spec.config_file} with overrides {' '.join(map(str, opts))}: {err}") from None
    try:
        train = tuple(fold_dataset_for(d, data, fold, strong_percent, inner) for d in cfg.DATASETS.TRAIN)
    except CrossValError as err:
        raise CrossValError(f"{spec.config_file}: DATASETS.TRAIN {err}") from None
    test = (fold_dataset_name(data, fold, "inner_val" if inner else "val"),)
    missing = [d for d in train + test if d not in DatasetCatalog.list()]
    if missing:
        raise CrossValError(f"{spec.config_file}, fold {fold}: datasets {missing} are not registered; prepare the "
                            f"folds (tools/prepare_busi.py or tools/make_phantom.py with --folds K and the strong "
                            f"fractions the configs use) under WSSDL.DATASET_ROOT / $WSSDL_DATASETS / ./datasets")
    cfg.DATASETS.TRAIN = train
    cfg.DATASETS.TEST = test
    cfg.OUTPUT_DIR = output_dir
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def read_state(run_dir: str) -> Optional[Dict]:
    """The run's state dict (:class:`~wssdl_d2.runs.state.RunState`), or None when there is no state file."""
    try:
        state = RunState.read(run_dir)
    except StateError as err:
        raise CrossValError(str(err)) from None
    return state.data if state else None


def run_fold(spec: RunSpec, data: str, fold: int, opts: Sequence[str], run_dir: str,
             train_fn: Callable = train_model, eval_fn: Callable = evaluate_model,
             strong_percent: Optional[int] = None, keep_checkpoints: bool = False,
             inner: bool = False) -> Tuple[Dict, str]:
    """Train (or continue) and evaluate one run of ``spec`` on fold ``fold`` (:func:`fold_config`, then
    :func:`run_config`); a finished run is left alone. Returns what :func:`run_config` returns."""
    cfg = fold_config(spec, data, fold, opts, run_dir, strong_percent, inner)
    about = {"config": spec.name, "config_file": os.path.abspath(spec.config_file), "fold": int(fold), "data": data}
    return run_config(cfg, run_dir, about, train_fn, eval_fn, keep_checkpoints)


def run_config(cfg, run_dir: str, about: Dict, train_fn: Callable = train_model,
               eval_fn: Callable = evaluate_model, keep_checkpoints: bool = False) -> Tuple[Dict, str]:
    """Train (or continue) the frozen ``cfg`` into ``run_dir`` (its OUTPUT_DIR) and evaluate it on
    ``cfg.DATASETS.TEST``; a finished run is left alone.

    ``about``: what the state file records of the run (``config`` name, ``config_file``, ``fold``, ``data``).
    ``keep_checkpoints``: keep the periodic checkpoints once the training has ended (default: removed then, with
    :func:`remove_periodic_checkpoints`; ``model_final.pth`` stays).
    Returns (state dict, what happened: "skipped" | "evaluated" | "trained and evaluated"). The per-image outcomes
    are in ``<run_dir>/inference/corloc_per_image.csv``. Raises CrossValError for a folder that holds another
    config's run or files not made by cross-validation; training errors propagate after the state records them.
    :func:`wssdl_d2.runs.train_and_evaluate` with cross-validation's error type.
    """
    try:
        return train_and_evaluate(cfg, run_dir, about, train_fn, eval_fn, keep_checkpoints)
    except StateError as err:
        raise CrossValError(str(err)) from None
