"""The plain Detectron2 reference: a stock Faster R-CNN trained by Detectron2's own ``DefaultTrainer``.

``WSSDL.TRAINER: detectron2`` (``configs/BUSI/plain_detectron2.yaml``) trains with Detectron2's ``DefaultTrainer``
as it is: its ``DatasetMapper`` (resize to INPUT.MIN_SIZE_TRAIN, horizontal flip; no other augmentation), its
training sampler (DATALOADER.FILTER_EMPTY_ANNOTATIONS drops images without a box, Detectron2's default), its model
built from Detectron2's registries (no wssdl_d2 head, loss or backbone), its optimizer, LR schedule and
checkpointer. The only override is :meth:`Detectron2ReferenceTrainer.build_evaluator`, which Detectron2 leaves
to each project: it is the project's CorLoc evaluator, so the reference is measured exactly as every other row.

It is the row that tells whether the project's own training (mapper, streams, backbone, recipe) costs accuracy
against the stock tool, on the same folds and images.
"""
import logging

from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import DatasetEvaluators
from detectron2.modeling import META_ARCH_REGISTRY, ROI_HEADS_REGISTRY

from ..data import register_prepared_datasets
from ..data.checks import checked_training_dicts
from ..evaluation import build_evaluators
from ..modeling.meta_arch import WSSDLRCNN
from ..modeling.roi_heads import MILROIHeads

logger = logging.getLogger(__name__)

#: Values of ``WSSDL.TRAINER``.
TRAINERS = ("wssdl", "detectron2")


class Detectron2ReferenceTrainer(DefaultTrainer):
    """Detectron2's ``DefaultTrainer``, with the project's evaluators (the one method Detectron2 leaves abstract)."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return DatasetEvaluators(build_evaluators(cfg, dataset_name, output_folder))


def check_reference_config(cfg) -> None:
    """Raise ValueError when ``cfg`` is not a plain Detectron2 model on boxed images: a wssdl_d2 meta-architecture or
    MIL head, a teacher, or weak images in DATASETS.TRAIN (Detectron2's trainer would drop them silently). The
    training data gets the project's checks first (WSSDL.CHECK_DATA: the same as WSSDLTrainer's), raising
    DatasetError naming the dataset file."""
    arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    if issubclass(arch, WSSDLRCNN) or issubclass(ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME), MILROIHeads):
        raise ValueError(f"WSSDL.TRAINER detectron2 trains a stock Detectron2 model, not {cfg.MODEL.META_ARCHITECTURE}"
                         f" / {cfg.MODEL.ROI_HEADS.NAME}: use GeneralizedRCNN and StandardROIHeads "
                         "(configs/BUSI/plain_detectron2.yaml)")
    if cfg.WSSDL.TEACHER.ENABLED:
        raise ValueError("WSSDL.TRAINER detectron2 has no teacher: set WSSDL.TEACHER.ENABLED False")
    checked_training_dicts(cfg.DATASETS.TRAIN, cfg.WSSDL.CHECK_DATA)
    weak = [name for name in cfg.DATASETS.TRAIN
            if any(d.get("supervision") == "weak" for d in DatasetCatalog.get(name))]
    if weak:
        raise ValueError(f"WSSDL.TRAINER detectron2 learns from boxes only, but DATASETS.TRAIN {weak} holds weak "
                         "images (image labels only): train it on train_all / train_strong_100, or use the wssdl "
                         "trainer")


def build_trainer(cfg):
    """The trainer ``cfg.WSSDL.TRAINER`` names: :class:`~wssdl_d2.engine.trainer.WSSDLTrainer` ("wssdl") or
    :class:`Detectron2ReferenceTrainer` ("detectron2", after :func:`check_reference_config`), the prepared datasets
    registered first (:func:`~wssdl_d2.data.register_prepared_datasets`)."""
    register_prepared_datasets(cfg.WSSDL.DATASET_ROOT)
    if cfg.WSSDL.TRAINER == "detectron2":
        check_reference_config(cfg)
        return Detectron2ReferenceTrainer(cfg)
    if cfg.WSSDL.TRAINER != "wssdl":
        raise ValueError(f"WSSDL.TRAINER must be one of {TRAINERS}, not {cfg.WSSDL.TRAINER!r}")
    from .trainer import WSSDLTrainer

    return WSSDLTrainer(cfg)
