"""The evaluators a wssdl_d2 run uses, chosen by ``cfg.WSSDL.EVAL``."""
import os

from detectron2.evaluation import COCOEvaluator


def build_evaluators(cfg, dataset_name, output_folder=None):
    """List of DatasetEvaluators for ``dataset_name``: COCO AP (``WSSDL.EVAL.COCO``)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
    evaluators = []
    if cfg.WSSDL.EVAL.COCO:
        evaluators.append(COCOEvaluator(dataset_name, tasks=("bbox",), distributed=True, output_dir=output_folder))
    return evaluators
