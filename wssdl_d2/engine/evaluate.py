"""Evaluating a checkpoint: the one function behind ``--eval-only`` style evaluations in the package and tools."""
from typing import Any, Dict

from ..model_zoo.safe_load import build_trained_model
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
