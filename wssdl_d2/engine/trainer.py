"""The project's Detectron2 trainer: strong / weak data streams, combined or alternating mini-batches.

``WSSDLTrainer`` is Detectron2's DefaultTrainer (hooks, LR schedule, evaluation, writers) with:

- the training data split into a strong and a weak stream (:mod:`wssdl_d2.data.streams`), mapped by
  :class:`wssdl_d2.data.WSSDLDatasetMapper`, after the cheap data checks;
- ``WSSDL.BATCH_MODE: combined`` (Detectron2's SimpleTrainer: one step on L_s + alpha L_ws) or
  ``alternating`` (:class:`.AlternatingTrainer`: a strong step and a weak step, two optimizers);
- :class:`.MILAlphaHook` setting and logging alpha, and the weak loss's class weights, for MIL models;
- the project's evaluators, optimizers (SGD / Adam / AdamW) and atomic checkpoints;
- a NaN / infinite loss stops training with :class:`.TrainingDivergedError`, whose message gives the iteration, the
  losses, the learning rate, the last checkpoint and what to change;
- with ``WSSDL.TEACHER.ENABLED``, the label-aware mean teacher (:mod:`wssdl_d2.teacher`): the two-view mapper for
  weak images, :class:`.TeacherStudentTrainer`, the teacher in every checkpoint (``"teacher"``, restored by
  ``--resume``) and evaluations of both teacher and student (``WSSDL.TEACHER.EVAL_WITH`` is the one reported).
"""
import logging
import os
import weakref

import torch
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, create_ddp_model
from detectron2.engine import hooks as d2_hooks
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNNWithTTA
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config_ranges import check_wssdl_ranges
from ..data import register_prepared_datasets
from ..data.checks import checked_training_dicts
from ..data.mapper import WSSDLDatasetMapper
from ..data.streams import BATCH_MODES, build_stream_loader
from ..evaluation import build_evaluators
from ..modeling.meta_arch import WSSDLRCNN
from ..modeling.mil_loss import class_weights_from_config
from ..modeling.roi_heads import MILROIHeads
from ..teacher import MeanTeacher, TeacherStudentMapper
from .alternating import AlternatingTrainer
from .checkpoint import AtomicDetectionCheckpointer
from .divergence import TrainingDivergedError, divergence_report
from .hooks import MILAlphaHook, unwrap_model
from .teacher_trainer import TeacherStudentTrainer

logger = logging.getLogger(__name__)


class WSSDLTrainer(DefaultTrainer):
    """DefaultTrainer with the project's data streams, batch modes, alpha hook, data checks, evaluators,
    optimizers and atomic checkpoints."""

    def __init__(self, cfg):
        # DefaultTrainer.__init__'s steps, in its order, with the project's own: a DDP wrapper that also runs on
        # CPU processes (gloo), the MIL class weights from the weak stream, the two-optimizer trainer of the
        # alternating mode and the atomic, weights-only checkpointer.
        check_wssdl_ranges(cfg)  # also for configs built in code (adapt_site --alpha, self-training rounds)
        if cfg.WSSDL.BATCH_MODE not in BATCH_MODES:
            raise ValueError(f"WSSDL.BATCH_MODE must be one of {BATCH_MODES}, not {cfg.WSSDL.BATCH_MODE!r}")
        if cfg.WSSDL.BATCH_MODE == "alternating" and cfg.SOLVER.AMP.ENABLED:
            raise ValueError("WSSDL.BATCH_MODE alternating does not support SOLVER.AMP.ENABLED")
        TrainerBase.__init__(self)
        logger_d2 = logging.getLogger("detectron2")
        if not logger_d2.isEnabledFor(logging.INFO):  # setup_logger is not called for d2
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        roi_heads = getattr(model, "roi_heads", None)
        if isinstance(roi_heads, MILROIHeads) and roi_heads.mil_class_weighting == "inverse_frequency":
            roi_heads.set_class_weights(class_weights_from_config(cfg, data_loader.weak_image_labels))
            logger.info("MIL class weights (normal, benign, malignant): %s", roi_heads.mil_class_weights)
        weak_modules = _weak_step_modules(model)
        teacher = MeanTeacher(cfg, model) if cfg.WSSDL.TEACHER.ENABLED else None
        model = create_cpu_or_gpu_ddp_model(model, broadcast_buffers=False)
        if teacher is not None:
            self._trainer = TeacherStudentTrainer(model, data_loader, optimizer, teacher)
        elif cfg.WSSDL.BATCH_MODE == "alternating":
            weak_optimizer = self.build_optimizer(cfg, weak_modules)
            self._trainer = AlternatingTrainer(model, data_loader, optimizer, weak_optimizer,
                                               self.build_lr_scheduler(cfg, weak_optimizer))
        else:
            self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self), allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS)
        if teacher is not None:
            self.checkpointer.add_checkpointable("teacher", teacher)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg

        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        hooks = super().build_hooks()
        roi_heads = getattr(unwrap_model(self._trainer.model), "roi_heads", None)
        if isinstance(roi_heads, MILROIHeads):
            hooks.insert(0, MILAlphaHook(self.cfg, roi_heads))
        if isinstance(self._trainer, TeacherStudentTrainer):
            hooks = [d2_hooks.EvalHook(self.cfg.TEST.EVAL_PERIOD, self._test_teacher_and_student)
                     if isinstance(h, d2_hooks.EvalHook) else h for h in hooks]
        return hooks

    def _test_teacher_and_student(self):
        """The EvalHook's evaluation of a teacher run: the model not named by ``WSSDL.TEACHER.EVAL_WITH`` into
        ``OUTPUT_DIR/inference_<teacher|student>``, then the named one as without a teacher (``OUTPUT_DIR/inference``;
        returned and reported); both logged as ``<teacher|student>/<task>/<metric>``. Before the teacher starts (burn-in), the
        student only."""
        teacher = self._trainer.teacher
        models = {"teacher": teacher.model, "student": self.model}
        main = self.cfg.WSSDL.TEACHER.EVAL_WITH if teacher.started else "student"
        order = ([name for name in models if name != main] if teacher.started else []) + [main]
        for name in order:
            folder = os.path.join(self.cfg.OUTPUT_DIR, f"inference_{name}")
            evaluators = None if name == main else [self.build_evaluator(self.cfg, dataset, folder)
                                                    for dataset in self.cfg.DATASETS.TEST]
            results = self.test(self.cfg, models[name], evaluators)
            if comm.is_main_process():
                scalars = {f"{name}/{k}": float(v) for k, v in flatten_results_dict(results).items()
                           if isinstance(v, (int, float))}
                self.storage.put_scalars(**scalars, smoothing_hint=False)
        self._last_eval_results = results
        return results

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
        register_prepared_datasets(cfg.WSSDL.DATASET_ROOT)  # a config not from load_config: its datasets too
        # before iteration 0, naming the dataset file: check_dataset.py's checks
        dicts = checked_training_dicts(cfg.DATASETS.TRAIN, cfg.WSSDL.CHECK_DATA)
        weak = sum(d.get("supervision") == "weak" for d in dicts)
        arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
        if weak and not issubclass(arch, WSSDLRCNN):
            raise ValueError(f"{weak} weak images in DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)}: "
                             f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE} cannot learn from them; use "
                             "WSSDLRCNN (configs/*/wssdl.yaml)")
        mapper = TeacherStudentMapper(cfg) if cfg.WSSDL.TEACHER.ENABLED else WSSDLDatasetMapper(cfg, is_train=True)
        loader = build_stream_loader(cfg, dicts, mapper)
        per_step = (loader.batch_sizes["strong"] + loader.batch_sizes["weak"]) * comm.get_world_size()
        if cfg.WSSDL.BATCH_MODE == "combined" and per_step != cfg.SOLVER.IMS_PER_BATCH:
            logger.warning("SOLVER.IMS_PER_BATCH %d is not used: each step holds WSSDL.STRONG_PER_BATCH + "
                           "WEAK_PER_BATCH images per process (%d in all)", cfg.SOLVER.IMS_PER_BATCH, per_step)
        return loader

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Detectron2's ``DefaultTrainer.test``; with ``TEST.AUG.ENABLED`` the model is first wrapped in Detectron2's
        ``GeneralizedRCNNWithTTA``: each image is also run at ``TEST.AUG.MIN_SIZES`` (long side at most
        ``TEST.AUG.MAX_SIZE``) and, with ``TEST.AUG.FLIP``, mirrored; the detections of every view are merged by
        per-class NMS (``MODEL.ROI_HEADS.NMS_THRESH_TEST``), scored as the model scores them
        (``WSSDL.TEST.DETECTION_SCORE``)."""
        if cfg.TEST.AUG.ENABLED and not isinstance(model, GeneralizedRCNNWithTTA):
            model = GeneralizedRCNNWithTTA(cfg, model)
        return super().test(cfg, model, evaluators)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """Detectron2's test loader, the prepared datasets registered first (:func:`register_prepared_datasets`)."""
        register_prepared_datasets(cfg.WSSDL.DATASET_ROOT)
        return super().build_test_loader(cfg, dataset_name)

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


def create_cpu_or_gpu_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """Detectron2's ``create_ddp_model`` (the model itself in a single process), except that a CPU model
    (several processes on gloo) gets no ``device_ids``: DistributedDataParallel refuses them for CPU modules."""
    if next(model.parameters()).device.type == "cpu":
        kwargs.setdefault("device_ids", None)
    return create_ddp_model(model, **kwargs)


def _weak_step_modules(model: torch.nn.Module) -> torch.nn.Module:
    """The modules a weak-only step trains: everything but the proposal generator."""
    return torch.nn.ModuleDict({name: module for name, module in model.named_children()
                                if name != "proposal_generator"})


def train_to_final(cfg, resume: bool = False):
    """Train ``cfg`` with :class:`WSSDLTrainer` (continuing from ``OUTPUT_DIR/last_checkpoint`` when ``resume``).
    Returns (path of ``OUTPUT_DIR/model_final.pth``, the trainer's last evaluation results, {} without
    DATASETS.TEST). Raises RuntimeError when training ends without the final checkpoint."""
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    if not os.path.isfile(final):
        raise RuntimeError(f"training into {cfg.OUTPUT_DIR} ended without model_final.pth")
    return final, getattr(trainer, "_last_eval_results", None) or {}
