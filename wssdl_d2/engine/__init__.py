"""Training: the Detectron2 trainer that owns the strong and weak streams, and its hooks."""
from .trainer import WSSDLTrainer

__all__ = ["WSSDLTrainer"]
