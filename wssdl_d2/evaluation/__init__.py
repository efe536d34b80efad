"""Evaluators: Detectron2's COCO AP and the project's CorLoc / FROC / diagnosis metrics with bootstrap CIs."""
from .build import build_evaluators
from .corloc_evaluator import CorLocEvaluator

__all__ = ["build_evaluators", "CorLocEvaluator"]
