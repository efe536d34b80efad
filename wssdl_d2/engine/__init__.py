"""Training: the Detectron2 trainer that owns the strong and weak streams, and its hooks."""
from .alternating import AlternatingTrainer
from .hooks import MILAlphaHook
from .trainer import WSSDLTrainer, train_to_final
from .evaluate import evaluate_weights
from .divergence import TrainingDivergedError

__all__ = ["AlternatingTrainer", "MILAlphaHook", "WSSDLTrainer", "evaluate_weights", "train_to_final", "TrainingDivergedError"]
