"""The fine-tune recipe: a trained model trained on for a few iterations at a constant learning rate, without
warm-up or LR steps, with a static MIL loss scale alpha. Site adaptation (:mod:`.site_adaptation`) and the
self-training / annotation-simulation steps that continue a model (:mod:`wssdl_d2.selftrain.rounds`) start from it;
where their learning rate and alpha come from is theirs. A config recipe only (nothing is trained here), so it sits
in the engine, below the run orchestration (:mod:`wssdl_d2.runs` re-exports :func:`finetune_config`).
"""
import os
from typing import Optional, Sequence

from detectron2.config import CfgNode

from ..modeling.alpha import alpha_at
from ..utils.atomic import atomic_open

FINETUNE_SCHEDULES = ("continue", "restart")


def finetune_config(base_cfg: CfgNode, weights: str, train: Sequence[str], output_dir: str, base_lr: float,
                    alpha: float, max_iter: int = 0) -> CfgNode:
    """A defrosted copy of ``base_cfg`` that fine-tunes ``weights`` on the registered datasets ``train`` into
    ``output_dir``: SOLVER.BASE_LR ``base_lr`` constant (WarmupMultiStepLR without steps, WARMUP_ITERS 0),
    WSSDL.MIL.ALPHA static at ``alpha``, SOLVER.MAX_ITER ``max_iter`` when > 0 (else the base config's). The
    caller sets what else it needs and freezes it (:func:`write_config` writes it)."""
    cfg = base_cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = weights or ""
    cfg.DATASETS.TRAIN = tuple(train)
    cfg.OUTPUT_DIR = output_dir
    if max_iter > 0:
        cfg.SOLVER.MAX_ITER = int(max_iter)
    cfg.SOLVER.BASE_LR = float(base_lr)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.WSSDL.MIL.ALPHA.SCHEDULE = "static"
    cfg.WSSDL.MIL.ALPHA.VALUE = float(alpha)
    return cfg


def write_config(cfg: CfgNode, output_dir: Optional[str] = None) -> str:
    """Write ``cfg`` (its exact YAML) atomically to ``<output_dir>/config.yaml`` (default OUTPUT_DIR), making the
    folder. Returns the file's path."""
    output_dir = output_dir or cfg.OUTPUT_DIR
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "config.yaml")
    with atomic_open(path, "w") as f:
        f.write(cfg.dump())
    return path


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


def final_alpha(cfg: CfgNode) -> float:
    """The MIL loss scale alpha at the last iteration of ``cfg``'s schedule."""
    return alpha_at(max(int(cfg.SOLVER.MAX_ITER) - 1, 0), cfg)


def continue_schedule_config(base_cfg: CfgNode, weights: str, train: Sequence[str], output_dir: str,
                             max_iter: int = 0) -> CfgNode:
    """:func:`finetune_config` going on where ``base_cfg``'s own schedule ends: at the constant
    :func:`finetune_lr` and alpha static at :func:`final_alpha` (both read from ``base_cfg``, before MAX_ITER is
    replaced by ``max_iter``), WARMUP_FACTOR 1.0. Defrosted."""
    cfg = finetune_config(base_cfg, weights, train, output_dir, finetune_lr(base_cfg), final_alpha(base_cfg),
                          max_iter)
    cfg.SOLVER.WARMUP_FACTOR = 1.0
    return cfg
