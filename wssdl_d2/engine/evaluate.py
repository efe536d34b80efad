"""Evaluating a checkpoint: the one function behind ``--eval-only`` style evaluations in the package and tools, and
what ``tools/train_net.py --eval-only`` checks first: that it was given trained weights (never a randomly
initialised model) and that its results would not overwrite another model's in ``OUTPUT_DIR/inference``."""
import json
import os
from typing import Any, Dict, Optional

from ..errors import UserError
from ..model_zoo.safe_load import build_trained_model
from ..utils.atomic import atomic_write_json
from .trainer import WSSDLTrainer


def evaluate_weights(cfg, weights: str, output_dir: str) -> Dict[str, Any]:
    """Evaluate ``weights`` (loaded weights-only, :func:`~wssdl_d2.model_zoo.build_trained_model`) on
    ``cfg.DATASETS.TEST`` with the project's evaluators, writing into ``output_dir/inference`` (corloc.json,
    corloc_per_image.csv, ...). ``cfg`` is not modified. Returns Detectron2's nested results dict
    ({dataset or task: {metric: value}})."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = output_dir
    cfg.MODEL.WEIGHTS = weights
    cfg.freeze()
    return WSSDLTrainer.test(cfg, build_trained_model(cfg))


# ---- tools/train_net.py --eval-only: which weights, and never over another model's results ------------------------

#: Written into OUTPUT_DIR/inference by ``--eval-only``: the weights whose results the folder holds.
EVALUATED_WEIGHTS = "evaluated_weights.json"
#: Files of OUTPUT_DIR/inference that are not results (the record above; the evaluation's config and log).
NOT_RESULTS = (EVALUATED_WEIGHTS, "config.yaml", "log.txt")


class EvalOnlyError(UserError, ValueError):
    """``--eval-only`` refused: no trained weights given, or its results would overwrite another model's."""


def _same_file(a: str, b: str) -> bool:
    return "://" not in a and "://" not in b and os.path.realpath(a) == os.path.realpath(b)


def eval_only_weights(cfg, resume: bool) -> str:
    """The checkpoint ``--eval-only`` evaluates: ``OUTPUT_DIR``'s last checkpoint with ``resume`` (when it has one),
    else ``MODEL.WEIGHTS``. Raises :class:`EvalOnlyError` when there is neither (the model would be randomly
    initialised), saying how to pass weights."""
    tag = os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
    if resume and os.path.isfile(tag):
        with open(tag) as f:
            return os.path.join(cfg.OUTPUT_DIR, f.read().strip())
    if cfg.MODEL.WEIGHTS:
        return cfg.MODEL.WEIGHTS
    raise EvalOnlyError(
        "--eval-only needs the trained model's weights: add MODEL.WEIGHTS path/to/model_final.pth"
        + (" (or --resume to evaluate the last checkpoint of OUTPUT_DIR)" if not resume
           else f" (--resume found no {tag})")
        + "; without them a randomly initialised model would be evaluated")


def results_owner(output_dir: str) -> Optional[str]:
    """The weights whose results ``output_dir/inference`` holds: the ones an earlier ``--eval-only`` recorded, else
    the run's own last checkpoint (``last_checkpoint``, else ``model_final.pth``); None when the folder holds no
    results."""
    folder = os.path.join(output_dir, "inference")
    if not os.path.isdir(folder) or not [n for n in os.listdir(folder) if n not in NOT_RESULTS]:
        return None
    record = os.path.join(folder, EVALUATED_WEIGHTS)
    if os.path.isfile(record):
        try:
            with open(record) as f:
                return str(json.load(f)["weights"])
        except (OSError, ValueError, KeyError, TypeError):
            return record  # unreadable record: the results are some model's, not provably this one's
    tag = os.path.join(output_dir, "last_checkpoint")
    if os.path.isfile(tag):
        with open(tag) as f:
            return os.path.join(output_dir, f.read().strip())
    return os.path.join(output_dir, "model_final.pth")


def check_results_owner(cfg, weights: str) -> None:
    """Raise :class:`EvalOnlyError` when ``OUTPUT_DIR/inference`` holds the results of another model than
    ``weights`` (:func:`results_owner`): evaluating ``weights`` there would overwrite them. The message names a
    folder of the evaluation's own."""
    owner = results_owner(cfg.OUTPUT_DIR)
    if owner is None or owner == weights or _same_file(owner, weights):
        return
    stem = os.path.splitext(os.path.basename(weights.rstrip("/")))[0] or "weights"
    suggestion = os.path.join(cfg.OUTPUT_DIR, f"eval_{stem}")
    raise EvalOnlyError(
        f"{os.path.join(cfg.OUTPUT_DIR, 'inference')} holds the results of another model ({owner}); --eval-only of "
        f"{weights} would overwrite them. Give the evaluation a folder of its own: OUTPUT_DIR {suggestion}")


def record_evaluated_weights(cfg, weights: str) -> None:
    """Write ``OUTPUT_DIR/inference/evaluated_weights.json``: the weights whose results the folder now holds."""
    path = weights if "://" in weights else os.path.realpath(weights)
    atomic_write_json(os.path.join(cfg.OUTPUT_DIR, "inference", EVALUATED_WEIGHTS), {"weights": path}, indent=1)
