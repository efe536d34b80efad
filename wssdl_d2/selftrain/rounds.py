"""What self-training rounds and simulated annotation steps share: a resumable state file, registering a
step's dataset files, training a step with WSSDLTrainer and reading its CorLoc.

A step lives in its own folder (``OUTPUT_DIR/round_<k>/`` or ``<strategy>/step_<k>/``) with the usual
Detectron2 output: ``config.yaml`` (the exact config), checkpoints and ``last_checkpoint``, ``inference/``
(``corloc.json`` ... of ``DATASETS.TEST``), and ``datasets/`` (its training files).
"""
import hashlib
import json
import logging
import os
from typing import Any, Dict, Optional, Sequence, Union

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.wssdl_json import register_wssdl_json
from ..errors import UserError
from ..evaluation import results_io
from ..modeling.alpha import alpha_at
from ..utils.atomic import atomic_open, atomic_write_json

logger = logging.getLogger(__name__)
STATE_VERSION = 1


class StateError(UserError, ValueError):
    """A state file that cannot be continued (other settings, unreadable); the message names it."""


class RunState:
    """A JSON state file ``<folder>/<name>`` written atomically after every change.

    ``data``: {"version", "settings": {...}, "steps": {str(k): {...}}}. :meth:`open` starts a new state or
    continues an existing one (``resume``) after checking that ``settings`` match.
    """

    def __init__(self, path, data):
        self.path = path
        self.data = data

    @classmethod
    def open(cls, folder: str, name: str, settings: Dict[str, Any], resume: bool = False,
             overwrite: bool = False) -> "RunState":
        """The state of ``folder``. An existing state file is continued with ``resume`` (its settings must equal
        ``settings``), replaced with ``overwrite``, and otherwise an error (nothing is overwritten silently)."""
        path = os.path.join(folder, name)
        settings = json.loads(json.dumps(settings))  # as stored: tuples become lists
        if os.path.exists(path) and not overwrite:
            if not resume:
                raise StateError(f"{path} exists (an earlier run): pass --resume to continue it or --overwrite to "
                                 "start again")
            try:
                with open(path) as f:
                    data = json.load(f)
            except (OSError, json.JSONDecodeError) as err:
                raise StateError(f"{path}: cannot read the state file ({err})") from None
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise StateError(f"{path}: not a state file of this version")
            old = data.get("settings", {})
            diff = {k: (old.get(k), settings.get(k)) for k in set(old) | set(settings) if old.get(k) != settings.get(k)}
            if diff:
                listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
                raise StateError(f"{path}: --resume with other settings than the run it continues ({listing}); "
                                 "use the same settings or a new output folder")
            return cls(path, data)
        state = cls(path, {"version": STATE_VERSION, "settings": settings, "steps": {}})
        state.save()
        return state

    def step(self, k: Union[int, str]) -> Dict[str, Any]:
        """The record of step ``k`` (a dict, empty when it has not started)."""
        return self.data["steps"].setdefault(str(k), {})

    def update(self, k: Union[int, str], **fields: Any) -> None:
        self.step(k).update(fields)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data, indent=1)


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


FINETUNE_SCHEDULES = ("continue", "restart")


def check_finetune_schedule(cfg: CfgNode, finetunes: bool = True) -> str:
    """Raise ValueError naming ``WSSDL.FINETUNE_SCHEDULE`` unless it is one of :data:`FINETUNE_SCHEDULES`, or,
    when the run ``finetunes``, a "continue" fine-tune would not learn (:func:`finetune_lr`); the tools call it
    before any training, so a typo does not surface only after the initial model."""
    mode = str(cfg.WSSDL.FINETUNE_SCHEDULE)
    if mode not in FINETUNE_SCHEDULES:
        raise ValueError(f"WSSDL.FINETUNE_SCHEDULE must be one of {FINETUNE_SCHEDULES}, not {mode!r}")
    if mode == "continue" and finetunes:
        finetune_lr(cfg)
    return mode


def finetune_lr(cfg: CfgNode) -> float:
    """The constant LR of a fine-tune that continues ``cfg``'s schedule: ``WSSDL.FINETUNE_LR`` when set, else
    where the schedule ends: ``BASE_LR * GAMMA ** n`` for WarmupMultiStepLR (n: the SOLVER.STEPS within
    SOLVER.MAX_ITER), ``BASE_LR_END`` for WarmupCosineLR. Raises ValueError naming the keys when that is 0 (a
    cosine schedule ending at 0: nothing to continue at) or the scheduler is another one."""
    if float(cfg.WSSDL.FINETUNE_LR) > 0:
        return float(cfg.WSSDL.FINETUNE_LR)
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if name == "WarmupMultiStepLR":
        passed = sum(1 for s in cfg.SOLVER.STEPS if s <= int(cfg.SOLVER.MAX_ITER))
        lr = float(cfg.SOLVER.BASE_LR) * float(cfg.SOLVER.GAMMA) ** passed
    elif name == "WarmupCosineLR":
        lr = float(cfg.SOLVER.BASE_LR_END)
    else:
        raise ValueError(f"WSSDL.FINETUNE_SCHEDULE continue: where SOLVER.LR_SCHEDULER_NAME {name} ends is not "
                         "known here; set WSSDL.FINETUNE_LR (the fine-tune's constant LR) or WSSDL.FINETUNE_SCHEDULE "
                         "restart")
    if lr <= 0:
        raise ValueError(f"WSSDL.FINETUNE_SCHEDULE continue: SOLVER.LR_SCHEDULER_NAME {name} ends at LR {lr:g} "
                         "(SOLVER.BASE_LR_END), so a fine-tune continuing it would not learn; set WSSDL.FINETUNE_LR "
                         "(the fine-tune's constant LR, e.g. 0.001) or WSSDL.FINETUNE_SCHEDULE restart")
    return lr


def continue_schedule(cfg: CfgNode) -> CfgNode:
    """Set (in place, ``cfg`` defrosted) the LR and alpha of a fine-tune that continues where ``cfg``'s own
    schedule ends: a constant :func:`finetune_lr` (WarmupMultiStepLR without steps, no warm-up) and alpha static
    at its value at the last iteration. Call it before SOLVER.MAX_ITER is changed: the end of the schedule is read
    from it. Returns ``cfg``."""
    final_alpha = alpha_at(max(int(cfg.SOLVER.MAX_ITER) - 1, 0), cfg)
    cfg.SOLVER.BASE_LR = finetune_lr(cfg)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.WARMUP_FACTOR = 1.0
    cfg.WSSDL.MIL.ALPHA.SCHEDULE = "static"
    cfg.WSSDL.MIL.ALPHA.VALUE = final_alpha
    return cfg


def step_config(base_cfg: CfgNode, output_dir: str, train_names: Sequence[str], weights: Optional[str],
                max_iter: int = 0, finetune: bool = False) -> CfgNode:
    """A copy of ``base_cfg`` training ``train_names`` from ``weights`` into ``output_dir`` (``max_iter`` > 0
    replaces SOLVER.MAX_ITER, and LR steps beyond it are dropped), written to ``output_dir/config.yaml``.
    ``finetune``: ``weights`` were trained with ``base_cfg``'s schedule; with ``WSSDL.FINETUNE_SCHEDULE``
    "continue" the step goes on at that schedule's final LR and alpha (:func:`continue_schedule`)."""
    cfg = base_cfg.clone()
    cfg.defrost()
    if check_finetune_schedule(cfg, finetune) == "continue" and finetune:
        continue_schedule(cfg)
    cfg.DATASETS.TRAIN = tuple(train_names)
    cfg.OUTPUT_DIR = output_dir
    cfg.MODEL.WEIGHTS = weights or ""
    if max_iter > 0:
        cfg.SOLVER.MAX_ITER = int(max_iter)
        cfg.SOLVER.STEPS = tuple(s for s in cfg.SOLVER.STEPS if s < max_iter)
        cfg.SOLVER.WARMUP_ITERS = min(int(cfg.SOLVER.WARMUP_ITERS), int(max_iter) // 4)
    cfg.freeze()
    os.makedirs(output_dir, exist_ok=True)
    with atomic_open(os.path.join(output_dir, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    return cfg


def train_step(cfg: CfgNode, resume: bool = False) -> str:
    """Train ``cfg`` with WSSDLTrainer (continuing from ``OUTPUT_DIR/last_checkpoint`` when ``resume``); the
    trainer's last evaluation writes ``OUTPUT_DIR/inference/corloc.json``. Returns the final checkpoint's path."""
    from ..engine import train_to_final

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
        resume = state.step(key).get("status") == "training"
        state.update(key, status="training")
        weights = train_step(step_config(cfg, folder, cfg.DATASETS.TRAIN, cfg.MODEL.WEIGHTS), resume=resume)
    state.update(key, status="done", weights=weights, corloc=corloc_summary(folder) if cfg.DATASETS.TEST else None)
    return state.step(key)


def corloc_summary(output_dir: str) -> Dict[str, Any]:
    """{"CorLoc", "CorLoc_lo", "CorLoc_hi", "CorLoc_top1", ...} (percent) from ``output_dir/inference``."""
    folder = os.path.join(output_dir, "inference")
    report = results_io.read_report(folder)
    out = {}
    for name in ("CorLoc", "CorLoc_top1"):
        metric = report["metrics"].get(name, {})
        out.update({name: metric.get("value"), f"{name}_lo": metric.get("lo"), f"{name}_hi": metric.get("hi")})
    out["images"] = report["counts"].get("images")
    return out
