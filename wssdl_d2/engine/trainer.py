"""The project's Detectron2 trainer: strong / weak data streams, combined or alternating mini-batches.

``WSSDLTrainer`` is Detectron2's DefaultTrainer (hooks, LR schedule, evaluation, writers) with:

- the training data split into a strong and a weak stream (:mod:`wssdl_d2.data.streams`), mapped by
  :class:`wssdl_d2.data.WSSDLDatasetMapper`, after the cheap data checks;
- ``WSSDL.BATCH_MODE: combined`` (Detectron2's SimpleTrainer: one step on L_s + alpha L_ws) or
  ``alternating`` (:class:`.AlternatingTrainer`: a strong step and a weak step, two optimizers);
- :class:`.MILAlphaHook` setting and logging alpha, and the weak loss's class weights, for MIL models;
- the project's evaluators, optimizers (SGD / Adam / AdamW) and atomic checkpoints;
- a NaN / infinite loss stops training with :class:`.TrainingDivergedError`, whose message gives the iteration, the
  losses, the learning rate, the last checkpoint and what to change.
"""
import logging
import weakref
from unittest import mock

import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer
from detectron2.engine import defaults as d2_defaults
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm

from ..data.checks import check_dataset_dicts
from ..data.mapper import WSSDLDatasetMapper
from ..data.streams import BATCH_MODES, build_stream_loader
from ..evaluation import build_evaluators
from ..modeling.meta_arch import WSSDLRCNN
from ..modeling.mil_loss import class_weights_from_config
from ..modeling.roi_heads import MILROIHeads
from .alternating import AlternatingTrainer
from .checkpoint import AtomicDetectionCheckpointer
from .divergence import TrainingDivergedError, divergence_report
from .hooks import MILAlphaHook, unwrap_model

logger = logging.getLogger(__name__)


class WSSDLTrainer(DefaultTrainer):
    """DefaultTrainer with the project's data streams, batch modes, alpha hook, data checks, evaluators,
    optimizers and atomic checkpoints."""

    def __init__(self, cfg):
        if cfg.WSSDL.BATCH_MODE not in BATCH_MODES:
            raise ValueError(f"WSSDL.BATCH_MODE must be one of {BATCH_MODES}, not {cfg.WSSDL.BATCH_MODE!r}")
        if cfg.WSSDL.BATCH_MODE == "alternating" and cfg.SOLVER.AMP.ENABLED:
            raise ValueError("WSSDL.BATCH_MODE alternating does not support SOLVER.AMP.ENABLED")
        with mock.patch.object(d2_defaults, "create_ddp_model", _create_ddp_model):
            super().__init__(cfg)
        model = unwrap_model(self._trainer.model)
        roi_heads = getattr(model, "roi_heads", None)
        if isinstance(roi_heads, MILROIHeads) and roi_heads.mil_class_weighting == "inverse_frequency":
            roi_heads.mil_class_weights = class_weights_from_config(cfg, self._trainer.data_loader.weak_image_labels)
            logger.info("MIL class weights (normal, benign, malignant): %s", roi_heads.mil_class_weights)
        if cfg.WSSDL.BATCH_MODE == "alternating":
            # DefaultTrainer built a SimpleTrainer; hooks and the checkpointer reach it through this trainer's
            # properties, so it can be swapped for the two-optimizer one here.
            weak_optimizer = self.build_optimizer(cfg, _weak_step_modules(model))
            self._trainer = AlternatingTrainer(
                self._trainer.model, self._trainer.data_loader, self._trainer.optimizer, weak_optimizer,
                self.build_lr_scheduler(cfg, weak_optimizer),
            )

    def build_hooks(self):
        # Called at the end of DefaultTrainer.__init__; swap in the atomic checkpointer before the
        # PeriodicCheckpointer hook is built around it.
        self.checkpointer = AtomicDetectionCheckpointer(
            self._trainer.model, self.cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
            allow_pickle=self.cfg.WSSDL.ALLOW_PICKLE_WEIGHTS,
            **{k: v for k, v in self.checkpointer.checkpointables.items() if k not in ("trainer",)},
        )
        hooks = super().build_hooks()
        roi_heads = getattr(unwrap_model(self._trainer.model), "roi_heads", None)
        if isinstance(roi_heads, MILROIHeads):
            hooks.insert(0, MILAlphaHook(self.cfg, roi_heads))
        return hooks

    def run_step(self):
        try:
            super().run_step()
        except TrainingDivergedError:
            raise
        except FloatingPointError as error:  # Detectron2's "Loss became infinite or NaN at iteration=..."
            latest = self.storage.latest()
            last_losses = {k: v for k, v in latest.items() if k.startswith("loss") or k == "total_loss"}
            checkpoint = self.checkpointer.get_checkpoint_file() if self.checkpointer.has_checkpoint() else None
            lr = self._trainer.optimizer.param_groups[0]["lr"]
            raise TrainingDivergedError(
                divergence_report(self.cfg, self.iter, lr, last_losses, str(error), checkpoint)) from None

    @classmethod
    def build_train_loader(cls, cfg):
        """Strong / weak streams over DATASETS.TRAIN (see :func:`wssdl_d2.data.streams.build_stream_loader`)."""
        dicts = [d for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name)]
        if cfg.WSSDL.CHECK_DATA:
            check_dataset_dicts(dicts, ", ".join(cfg.DATASETS.TRAIN))
        weak = sum(d.get("supervision") == "weak" for d in dicts)
        arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
        if weak and not issubclass(arch, WSSDLRCNN):
            raise ValueError(f"{weak} weak images in DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)}: "
                             f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE} cannot learn from them; use "
                             "WSSDLRCNN (configs/*/wssdl.yaml)")
        loader = build_stream_loader(cfg, dicts, WSSDLDatasetMapper(cfg, is_train=True))
        per_step = (loader.batch_sizes["strong"] + loader.batch_sizes["weak"]) * comm.get_world_size()
        if cfg.WSSDL.BATCH_MODE == "combined" and per_step != cfg.SOLVER.IMS_PER_BATCH:
            logger.warning("SOLVER.IMS_PER_BATCH %d is not used: each step holds WSSDL.STRONG_PER_BATCH + "
                           "WEAK_PER_BATCH images per process (%d in all)", cfg.SOLVER.IMS_PER_BATCH, per_step)
        return loader

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


def _create_ddp_model(model, **kwargs):
    """Detectron2's ``create_ddp_model``, except that a CPU model (several processes on gloo) gets no
    ``device_ids``: DistributedDataParallel refuses them for CPU modules."""
    if next(model.parameters()).device.type == "cpu":
        kwargs.setdefault("device_ids", None)
    return _D2_CREATE_DDP_MODEL(model, **kwargs)


_D2_CREATE_DDP_MODEL = d2_defaults.create_ddp_model


def _weak_step_modules(model):
    """The modules a weak-only step trains: everything but the proposal generator."""
    return torch.nn.ModuleDict({name: module for name, module in model.named_children()
                                if name != "proposal_generator"})
