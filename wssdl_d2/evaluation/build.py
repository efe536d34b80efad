"""The evaluators a wssdl_d2 run uses, chosen by ``cfg.WSSDL.EVAL``."""
import os

from detectron2.evaluation import COCOEvaluator

from .corloc_evaluator import CorLocEvaluator


def build_evaluators(cfg, dataset_name, output_folder=None):
    """List of DatasetEvaluators for ``dataset_name``: COCO AP (``WSSDL.EVAL.COCO``) and CorLoc / FROC /
    diagnosis (``WSSDL.EVAL.CORLOC``), both writing into ``output_folder`` (default ``OUTPUT_DIR/inference``)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
    evaluators = []
    if cfg.WSSDL.EVAL.COCO:
        evaluators.append(COCOEvaluator(dataset_name, tasks=("bbox",), distributed=True, output_dir=output_folder))
    if cfg.WSSDL.EVAL.CORLOC:
        evaluators.append(CorLocEvaluator.from_config(cfg, dataset_name, output_folder))
    return evaluators
