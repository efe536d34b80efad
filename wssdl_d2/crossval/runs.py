"""One cross-validation run: a config trained on the training part of fold k and evaluated on the held-out fold k.

A run lives in ``<out>/<config name>/fold<k>/`` (Detectron2's OUTPUT_DIR: checkpoints, ``log.txt``,
``metrics.json``; the evaluation's ``inference/corloc_per_image.csv`` and ``corloc.json``) with a state file
``crossval_state.json`` written atomically at every step:

- ``training``: training started (Detectron2's ``last_checkpoint`` lets it continue, as ``--resume`` does);
- ``trained``: ``model_final.pth`` is written; only the evaluation is left (the periodic checkpoints, needed only to
  continue a stopped training, are removed then unless ``keep_checkpoints``: 57 MB each for the BUSI configs);
- ``evaluated``: finished; never trained or evaluated again;
- ``failed``: the last attempt raised (message kept); the next start tries again from the last checkpoint.

The state holds a fingerprint of the run's config (everything but OUTPUT_DIR): a folder started with another config
is refused, so a finished run is never overwritten and a stopped one is never continued with other settings.
"""
import hashlib
import json
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.utils.env import seed_all_rng

from ..config import merge_config, resolve_device
from ..data.folds import fold_dataset_name
from ..errors import UserError
from ..utils.atomic import atomic_write_json

STATE_FILE = "crossval_state.json"
#: Detectron2's periodic checkpoints (``model_0000099.pth``); ``model_final.pth`` is not one.
PERIODIC_CHECKPOINT_RE = re.compile(r"^model_\d{7}\.pth$")
#: A prepared split name at the end of a dataset name: busi_train_strong_20 -> train_strong_20.
SPLIT_RE = re.compile(r"(?:^|_)(train_strong_\d+|train_weak_\d+|train_all|val|test)$")

logger = logging.getLogger(__name__)


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


def config_fingerprint(cfg) -> str:
    """sha256 of the config's YAML with OUTPUT_DIR blanked (a run folder may be moved)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = ""
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def fingerprint_before_new_keys(cfg, saved_config: str) -> Optional[str]:
    """The fingerprint ``cfg`` had before the config keys it has and the run's ``saved_config`` (its config.yaml)
    lacks were added to wssdl_d2: those keys dropped when each is at its default, so a run started with an older
    wssdl_d2 is still recognised. None when a key the saved config lacks has a non-default value here (the run
    did not have that setting) or the file is unreadable."""
    import yaml
    from detectron2.config import get_cfg

    from ..config import add_wssdl_config

    try:
        with open(saved_config) as f:
            saved = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    cfg = cfg.clone()
    cfg.defrost()

    def prune(node, saved_node, default_node) -> bool:
        for key in list(node.keys()):
            if not isinstance(saved_node, dict) or key not in saved_node:
                if not isinstance(default_node, dict) or key not in default_node or node[key] != default_node[key]:
                    return False
                del node[key]
            elif isinstance(node[key], CfgNode) and not prune(node[key], saved_node[key], default_node.get(key)):
                return False
        return True

    return config_fingerprint(cfg) if prune(cfg, saved, add_wssdl_config(get_cfg())) else None


def config_matches(cfg, fingerprint: Optional[str], saved_config: str) -> bool:
    """Whether the recorded ``fingerprint`` of a run (or evaluation) is ``cfg``'s, now or before config keys at their
    defaults here were added (:func:`fingerprint_before_new_keys` with the run's ``saved_config``)."""
    return fingerprint == config_fingerprint(cfg) or fingerprint == fingerprint_before_new_keys(cfg, saved_config)


def read_state(run_dir: str):
    """The run's state dict, or None when there is no state file."""
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as err:
        raise CrossValError(f"{path}: unreadable state file ({err}); remove the run folder to start it again") from None
    if not isinstance(state, dict) or "status" not in state or "fingerprint" not in state:
        raise CrossValError(f"{path}: not a cross-validation state file")
    return state


def _write_state(run_dir, state):
    atomic_write_json(os.path.join(run_dir, STATE_FILE), state, indent=1)


@contextmanager
def run_log(run_dir: str):
    """Copy the detectron2 / fvcore / wssdl_d2 log records of the block into ``<run_dir>/log.txt``."""
    handler = logging.FileHandler(os.path.join(run_dir, "log.txt"))
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", "%m/%d %H:%M:%S"))
    loggers = [logging.getLogger(n) for n in ("detectron2", "fvcore", "wssdl_d2")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def training_config(cfg: CfgNode) -> CfgNode:
    """The config training runs with: without periodic evaluation (TEST.EVAL_PERIOD 0) DATASETS.TEST is emptied,
    since Detectron2's trainer would evaluate the final model once more before :func:`run_fold` does."""
    if cfg.TEST.EVAL_PERIOD > 0:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TEST = ()
    cfg.freeze()
    return cfg


def remove_periodic_checkpoints(run_dir: str) -> int:
    """Delete the periodic checkpoints (:data:`PERIODIC_CHECKPOINT_RE`) of a run whose ``model_final.pth`` exists;
    a run without it keeps them (they are how it continues). Returns the number of bytes freed."""
    if not os.path.isfile(os.path.join(run_dir, "model_final.pth")):
        return 0
    freed = 0
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if PERIODIC_CHECKPOINT_RE.match(name) and os.path.isfile(path):
            freed += os.path.getsize(path)
            os.remove(path)
    return freed


def train_model(cfg) -> None:
    """Train ``cfg`` in this process with the trainer WSSDL.TRAINER names (the project's, or Detectron2's plain
    DefaultTrainer for the reference row), continuing from ``OUTPUT_DIR/last_checkpoint``
    when there is one (Detectron2's ``--resume``); seeded from ``cfg.SEED``."""
    from ..engine.reference import build_trainer

    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()


def evaluate_model(cfg, weights: str, output_dir: str):
    """:func:`wssdl_d2.engine.evaluate_weights` (kept separate so tests can count calls)."""
    from ..engine import evaluate_weights

    return evaluate_weights(cfg, weights, output_dir)


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
    """
    fingerprint = config_fingerprint(cfg)
    state = read_state(run_dir)
    if state is None:
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            raise CrossValError(f"{run_dir}: not empty and has no {STATE_FILE}; it was not made by cross-validation "
                                "and is not overwritten (choose another --out)")
        os.makedirs(run_dir, exist_ok=True)
        state = dict(about, train=list(cfg.DATASETS.TRAIN), test=list(cfg.DATASETS.TEST),
                     max_iter=int(cfg.SOLVER.MAX_ITER), fingerprint=fingerprint, status="new",
                     train_seconds=0.0, eval_seconds=0.0)
        cfg_path = os.path.join(run_dir, "config.yaml")
        with open(cfg_path, "w") as f:
            f.write(cfg.dump())
    elif state["fingerprint"] != fingerprint:
        if not config_matches(cfg, state["fingerprint"], os.path.join(run_dir, "config.yaml")):
            raise CrossValError(f"{os.path.join(run_dir, STATE_FILE)}: this run was started with another config "
                                f"({state.get('config_file')}, status {state['status']}); it is not continued or "
                                "overwritten with the new settings: choose another --out")
        logger.info("%s: started before wssdl_d2 added config keys that are at their defaults here; continued",
                    run_dir)
    per_image = os.path.join(run_dir, "inference", "corloc_per_image.csv")
    if state["status"] == "evaluated" and os.path.isfile(per_image):
        return state, "skipped"
    final = os.path.join(run_dir, "model_final.pth")
    did = "evaluated"
    if state["status"] not in ("trained", "evaluated") or not os.path.isfile(final):
        state["status"] = "training"
        _write_state(run_dir, state)
        start = time.perf_counter()
        try:
            with run_log(run_dir):
                train_fn(training_config(cfg))
        except BaseException as err:  # KeyboardInterrupt too: the state says where it stopped
            state["train_seconds"] += time.perf_counter() - start
            state["status"], state["error"] = "failed", f"{type(err).__name__}: {err}"
            _write_state(run_dir, state)
            raise
        state["train_seconds"] += time.perf_counter() - start
        if not os.path.isfile(final):
            state["status"], state["error"] = "failed", f"training ended without {final}"
            _write_state(run_dir, state)
            raise CrossValError(f"{run_dir}: training ended without model_final.pth")
        state["status"] = "trained"
        state.pop("error", None)
        _write_state(run_dir, state)
        if not keep_checkpoints:
            with run_log(run_dir):
                freed = remove_periodic_checkpoints(run_dir)
                if freed:
                    logger.info("%s: periodic checkpoints removed (%.1f MB); model_final.pth kept", run_dir,
                                freed / 2**20)
        did = "trained and evaluated"
    start = time.perf_counter()
    with run_log(run_dir):
        eval_fn(cfg, final, run_dir)
    state["eval_seconds"] = time.perf_counter() - start
    state["status"] = "evaluated"
    _write_state(run_dir, state)
    return state, did
