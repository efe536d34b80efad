"""Training a run and evaluating its final model, resumably: :func:`train_and_evaluate` takes one run folder from
``new`` to ``evaluated`` through its state file (:class:`~.state.RunState`), so a stopped run continues from its
last checkpoint and a finished one is never trained or evaluated again; :func:`train_and_evaluate_step` does the
same for one step of a run of steps (a self-training round, an annotation-simulation step), whose trainer
evaluates the final model itself.

The states of a run (``crossval_state.json``):

- ``training``: training started (Detectron2's ``last_checkpoint`` lets it continue, as ``--resume`` does);
- ``trained``: ``model_final.pth`` is written; only the evaluation is left (the periodic checkpoints, needed only to
  continue a stopped training, are removed then unless ``keep_checkpoints``: 57 MB each for the BUSI configs);
- ``evaluated``: finished; never trained or evaluated again;
- ``failed``: the last attempt raised (message kept); the next start tries again from the last checkpoint.
"""
import logging
import os
import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Union

from detectron2.config import CfgNode
from detectron2.utils.env import seed_all_rng

from ..evaluation import results_io
from ..evaluation.run_dir import RunDir
from .state import RunState, StateError

#: Detectron2's periodic checkpoints (``model_0000099.pth``); ``model_final.pth`` is not one.
PERIODIC_CHECKPOINT_RE = re.compile(r"^model_\d{7}\.pth$")

logger = logging.getLogger(__name__)


@contextmanager
def run_log(run_dir: str) -> Iterator[None]:
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
    since Detectron2's trainer would evaluate the final model once more before :func:`train_and_evaluate` does."""
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
    if not os.path.isfile(RunDir(run_dir).final_weights):
        return 0
    freed = 0
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if PERIODIC_CHECKPOINT_RE.match(name) and os.path.isfile(path):
            freed += os.path.getsize(path)
            os.remove(path)
    return freed


def train_model(cfg: CfgNode) -> None:
    """Train ``cfg`` in this process with the trainer WSSDL.TRAINER names (the project's, or Detectron2's plain
    DefaultTrainer for the reference row), continuing from ``OUTPUT_DIR/last_checkpoint``
    when there is one (Detectron2's ``--resume``); seeded from ``cfg.SEED``."""
    from ..engine.reference import build_trainer

    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()


def evaluate_model(cfg: CfgNode, weights: str, output_dir: str) -> Dict[str, Any]:
    """:func:`wssdl_d2.engine.evaluate_weights` (kept separate so tests can count calls)."""
    from ..engine import evaluate_weights

    return evaluate_weights(cfg, weights, output_dir)


def train_to_final(cfg: CfgNode, resume: bool = False) -> Tuple[str, Dict[str, Any]]:
    """Train ``cfg`` with WSSDLTrainer (continuing from ``OUTPUT_DIR/last_checkpoint`` when ``resume``); the
    trainer's last evaluation writes ``OUTPUT_DIR/inference/``. Returns (the final checkpoint's path, that
    evaluation's results; {} without DATASETS.TEST)."""
    from ..engine import train_to_final as engine_train_to_final

    return engine_train_to_final(cfg, resume)


def _train(cfg: CfgNode, run_dir: str, state: RunState, train_fn: Callable, keep_checkpoints: bool) -> None:
    """The training part of :func:`train_and_evaluate`: status ``training``, then ``trained`` or ``failed``."""
    final = RunDir(run_dir).final_weights
    state.set(status="training")
    start = time.perf_counter()
    try:
        with run_log(run_dir):
            train_fn(training_config(cfg))
    except BaseException as err:  # KeyboardInterrupt too: the state says where it stopped
        state.data["train_seconds"] += time.perf_counter() - start
        state.set(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    state.data["train_seconds"] += time.perf_counter() - start
    if not os.path.isfile(final):
        state.set(status="failed", error=f"training ended without {final}")
        raise StateError(f"{run_dir}: training ended without model_final.pth")
    state.data.pop("error", None)
    state.set(status="trained")
    if not keep_checkpoints:
        with run_log(run_dir):
            freed = remove_periodic_checkpoints(run_dir)
            if freed:
                logger.info("%s: periodic checkpoints removed (%.1f MB); model_final.pth kept", run_dir, freed / 2**20)


def train_and_evaluate(cfg: CfgNode, run_dir: str, about: Mapping[str, Any], train_fn: Callable = train_model,
                       eval_fn: Callable = evaluate_model, keep_checkpoints: bool = False) -> Tuple[Dict, str]:
    """Train (or continue) the frozen ``cfg`` into ``run_dir`` (its OUTPUT_DIR) and evaluate it on
    ``cfg.DATASETS.TEST``; a finished run is left alone.

    ``about``: what the state file records of the run (``config`` name, ``config_file``, ``fold``, ``data``).
    ``train_fn(cfg)`` trains (default :func:`train_model`), ``eval_fn(cfg, weights, output_dir)`` evaluates
    (default :func:`evaluate_model`). ``keep_checkpoints``: keep the periodic checkpoints once the training has
    ended (default: removed then, with :func:`remove_periodic_checkpoints`; ``model_final.pth`` stays).
    Returns (state dict, what happened: "skipped" | "evaluated" | "trained and evaluated"). The per-image outcomes
    are in ``<run_dir>/inference/corloc_per_image.csv``. Raises StateError for a folder that holds another
    config's run or files not made by a run; training errors propagate after the state records them.
    """
    state = RunState.open_run(run_dir, cfg, about)
    layout = RunDir(run_dir)
    if state.status == "evaluated" and layout.is_evaluated():
        return state.data, "skipped"
    did = "evaluated"
    if state.status not in ("trained", "evaluated") or not os.path.isfile(layout.final_weights):
        _train(cfg, run_dir, state, train_fn, keep_checkpoints)
        did = "trained and evaluated"
    start = time.perf_counter()
    with run_log(run_dir):
        eval_fn(cfg, layout.final_weights, run_dir)
    state.data["eval_seconds"] = time.perf_counter() - start
    state.set(status="evaluated")
    return state.data, did


def corloc_summary(output_dir: str) -> Dict[str, Any]:
    """{"CorLoc", "CorLoc_lo", "CorLoc_hi", "CorLoc_top1", ..., "images"} (percent) from ``output_dir/inference``."""
    report = results_io.read_report(RunDir(output_dir).inference)
    out = {}
    for name in ("CorLoc", "CorLoc_top1"):
        metric = report["metrics"].get(name, {})
        out.update({name: metric.get("value"), f"{name}_lo": metric.get("lo"), f"{name}_hi": metric.get("hi")})
    out["images"] = report["counts"].get("images")
    return out


def train_and_evaluate_step(state: RunState, key: Union[int, str], cfg: CfgNode,
                            train: Optional[Callable[..., str]] = None, **record: Any) -> Dict[str, Any]:
    """Train step ``key`` of a run of steps with the frozen ``cfg`` (continued from ``OUTPUT_DIR/last_checkpoint``
    when the state says a training of it had begun) and record it: status ``training`` (with the ``record``
    fields), then ``done`` with its ``weights`` and ``corloc`` (:func:`corloc_summary`; None without
    DATASETS.TEST). ``train(cfg, resume)`` returns the final checkpoint's path (default: WSSDLTrainer,
    :func:`train_to_final`). Returns the step's record."""
    resume = state.step(key).get("status") == "training"
    state.update(key, status="training", **record)
    weights = train(cfg, resume) if train is not None else train_to_final(cfg, resume)[0]
    state.update(key, status="done", weights=weights,
                 corloc=corloc_summary(cfg.OUTPUT_DIR) if cfg.DATASETS.TEST else None)
    return state.step(key)
