"""Evaluators: Detectron2's COCO AP and the project's CorLoc / diagnosis metrics."""
from .build import build_evaluators

__all__ = ["build_evaluators"]
