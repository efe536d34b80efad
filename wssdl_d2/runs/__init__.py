"""Runs: one resumable run state (:mod:`.state`) and training a run folder to its evaluation (:mod:`.train`), shared
by cross-validation, site adaptation, self-training and the annotation simulation. Two pieces they share sit lower,
so the layers below use them too: the run-folder layout, :mod:`wssdl_d2.evaluation.run_dir` (the evaluation readers),
and the fine-tune recipe, :mod:`wssdl_d2.engine.finetune` (site adaptation); both are re-exported here."""
from ..evaluation.run_dir import RunDir
from ..engine.finetune import finetune_config
from .state import RunState, StateError, config_fingerprint
from .train import train_and_evaluate

__all__ = ["RunDir", "RunState", "StateError", "config_fingerprint", "finetune_config", "train_and_evaluate"]
