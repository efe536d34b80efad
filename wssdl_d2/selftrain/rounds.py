"""What self-training rounds and simulated annotation steps share: registering a step's dataset files, a step's
config, training a step with WSSDLTrainer and reading its CorLoc. The resumable state file (:class:`RunState`) and
the fine-tune recipe are :mod:`wssdl_d2.runs`'s (re-exported here).

A step lives in its own folder (``OUTPUT_DIR/round_<k>/`` or ``<strategy>/step_<k>/``) with the usual
Detectron2 output: ``config.yaml`` (the exact config), checkpoints and ``last_checkpoint``, ``inference/``
(``corloc.json`` ... of ``DATASETS.TEST``), and ``datasets/`` (its training files).
"""
import hashlib
import logging
import os
from typing import Any, Dict, Optional, Sequence, Union

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.wssdl_json import register_wssdl_json
from ..engine.finetune import (FINETUNE_SCHEDULES, check_finetune_schedule, continue_schedule_config, finetune_lr,
                             write_config)
from ..runs.state import STATE_VERSION, RunState, StateError
from ..runs.train import corloc_summary, train_and_evaluate_step, train_to_final

__all__ = ["FINETUNE_SCHEDULES", "RunState", "STATE_VERSION", "StateError", "check_finetune_schedule",
           "corloc_summary", "finetune_lr", "initial_step", "register_dataset", "step_config",
           "train_and_evaluate_step", "train_step", "unique_prefix"]

logger = logging.getLogger(__name__)


def unique_prefix(folder: str, kind: str) -> str:
    """A dataset-name prefix unique to an output folder (repeated runs in one process do not clash)."""
    digest = hashlib.sha1(os.path.abspath(folder).encode()).hexdigest()[:8]
    return f"{kind}_{digest}"


def register_dataset(name: str, path: str) -> str:
    """Register (again, when the name exists: the file may have been rewritten) a dataset file."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_wssdl_json(name, path)
    return name


def step_config(base_cfg: CfgNode, output_dir: str, train_names: Sequence[str], weights: Optional[str],
                max_iter: int = 0, finetune: bool = False) -> CfgNode:
    """A copy of ``base_cfg`` training ``train_names`` from ``weights`` into ``output_dir`` (``max_iter`` > 0
    replaces SOLVER.MAX_ITER, and LR steps beyond it are dropped), written to ``output_dir/config.yaml``.
    ``finetune``: ``weights`` were trained with ``base_cfg``'s schedule; with ``WSSDL.FINETUNE_SCHEDULE``
    "continue" the step is the fine-tune recipe going on at that schedule's final LR and alpha
    (:func:`wssdl_d2.engine.finetune.continue_schedule_config`)."""
    if check_finetune_schedule(base_cfg, finetune) == "continue" and finetune:
        cfg = continue_schedule_config(base_cfg, weights, train_names, output_dir, max_iter)
    else:  # the config's own schedule, shortened to max_iter
        cfg = base_cfg.clone()
        cfg.defrost()
        cfg.DATASETS.TRAIN = tuple(train_names)
        cfg.OUTPUT_DIR = output_dir
        cfg.MODEL.WEIGHTS = weights or ""
        if max_iter > 0:
            cfg.SOLVER.MAX_ITER = int(max_iter)
            cfg.SOLVER.STEPS = tuple(s for s in cfg.SOLVER.STEPS if s < max_iter)
            cfg.SOLVER.WARMUP_ITERS = min(int(cfg.SOLVER.WARMUP_ITERS), int(max_iter) // 4)
    cfg.freeze()
    write_config(cfg, output_dir)
    return cfg


def train_step(cfg: CfgNode, resume: bool = False) -> str:
    """Train ``cfg`` with WSSDLTrainer (continuing from ``OUTPUT_DIR/last_checkpoint`` when ``resume``); the
    trainer's last evaluation writes ``OUTPUT_DIR/inference/corloc.json``. Returns the final checkpoint's path."""
    return train_to_final(cfg, resume)[0]


def initial_step(cfg: CfgNode, state: RunState, key: Union[int, str], folder: str,
                 initial_weights: Optional[str] = None) -> Dict[str, Any]:
    """Step ``key`` of ``state``: the initial model in ``folder`` - ``initial_weights`` evaluated on
    DATASETS.TEST, or a model trained from the config (continued when a stopped run had begun it). Marks the
    step done with its ``weights`` and ``corloc``; returns the step's record."""
    if initial_weights:
        logger.info("Initial model %s: evaluating it", initial_weights)
        step_config(cfg, folder, cfg.DATASETS.TRAIN, initial_weights)  # the record of what this step is
        if cfg.DATASETS.TEST:
            from ..engine.evaluate import evaluate_weights

            evaluate_weights(cfg, initial_weights, folder)
        weights = initial_weights
    else:
        logger.info("Initial model: training on %s", ", ".join(cfg.DATASETS.TRAIN))
        return train_and_evaluate_step(state, key, step_config(cfg, folder, cfg.DATASETS.TRAIN, cfg.MODEL.WEIGHTS),
                                       train_step)
    state.update(key, status="done", weights=weights, corloc=corloc_summary(folder) if cfg.DATASETS.TEST else None)
    return state.step(key)
