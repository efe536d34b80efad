"""The evaluators a wssdl_d2 run uses, chosen by ``cfg.WSSDL.EVAL``."""
import os
from typing import List, Optional

from detectron2.config import CfgNode
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator

from .corloc_evaluator import CorLocEvaluator


def build_evaluators(cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None) -> List[DatasetEvaluator]:
    """List of DatasetEvaluators for ``dataset_name``: COCO AP (``WSSDL.EVAL.COCO``) and CorLoc / FROC /
    diagnosis (``WSSDL.EVAL.CORLOC``), both writing into ``output_folder`` (default ``OUTPUT_DIR/inference``)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
    evaluators = []
    if cfg.WSSDL.EVAL.COCO:
        evaluators.append(COCOEvaluator(dataset_name, tasks=("bbox",), distributed=True, output_dir=output_folder))
    if cfg.WSSDL.EVAL.CORLOC:
        evaluators.append(CorLocEvaluator.from_config(cfg, dataset_name, output_folder))
    return evaluators
