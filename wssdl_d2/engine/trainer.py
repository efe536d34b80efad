"""The project's Detectron2 trainer."""
import logging
import weakref

import torch
from detectron2.data import DatasetCatalog, DatasetMapper, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

from ..data.checks import check_dataset_dicts
from ..evaluation import build_evaluators
from .checkpoint import AtomicDetectionCheckpointer

logger = logging.getLogger(__name__)


class WSSDLTrainer(DefaultTrainer):
    """DefaultTrainer with the project's data checks, evaluators, optimizers and atomic checkpoints."""

    def build_hooks(self):
        # Called at the end of DefaultTrainer.__init__; swap in the atomic checkpointer before the
        # PeriodicCheckpointer hook is built around it.
        self.checkpointer = AtomicDetectionCheckpointer(
            self._trainer.model, self.cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
            **{k: v for k, v in self.checkpointer.checkpointables.items() if k not in ("trainer",)},
        )
        return super().build_hooks()

    @classmethod
    def build_train_loader(cls, cfg):
        dicts = [d for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name)]
        if cfg.WSSDL.CHECK_DATA:
            check_dataset_dicts(dicts, ", ".join(cfg.DATASETS.TRAIN))
        weak = sum(d["supervision"] == "weak" for d in dicts)
        if weak:
            raise ValueError(f"{weak} weak images in DATASETS.TRAIN {cfg.DATASETS.TRAIN}: this trainer needs boxes")
        return build_detection_train_loader(cfg, dataset=dicts, mapper=DatasetMapper(cfg, is_train=True))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        from detectron2.evaluation import DatasetEvaluators

        return DatasetEvaluators(build_evaluators(cfg, dataset_name, output_folder))

    @classmethod
    def build_optimizer(cls, cfg, model):
        name = cfg.WSSDL.SOLVER.OPTIMIZER.upper()
        if name == "SGD":
            return super().build_optimizer(cfg, model)
        params = get_default_optimizer_params(
            model, base_lr=cfg.SOLVER.BASE_LR, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        )
        optimizers = {"ADAM": torch.optim.Adam, "ADAMW": torch.optim.AdamW}
        if name not in optimizers:
            raise ValueError(f"WSSDL.SOLVER.OPTIMIZER must be SGD, ADAM or ADAMW, not {cfg.WSSDL.SOLVER.OPTIMIZER!r}")
        optimizer_class = maybe_add_gradient_clipping(cfg, optimizers[name])
        return optimizer_class(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY,
                               eps=cfg.WSSDL.SOLVER.ADAM_EPS)
