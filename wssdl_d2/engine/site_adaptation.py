"""Site adaptation: fine-tune a trained model on a new site's scans that carry only a diagnosis (image label).

The workflow (tools/adapt_site.py, docs/SITE_ADAPTATION.md):

1. :func:`prepare_site` reads the site's scans in BUSI's layout (``<site>/{normal,benign,malignant}/*.png``; mask
   files ``<name>_mask.png`` only where a lesion was outlined) into ``<dataset root>/<name>/``: every scan as a weak
   image (``<name>_train_weak_n<N>``) except ``N`` scans with a lesion mask, which keep their boxes
   (``<name>_train_strong_n<N>``; none for N = 0).
2. :func:`adaptation_config` turns the model's own training config into the joint method (WSSDLRCNN,
   StrongOnlyRPN, MILROIHeads; a model trained without them has the same parameters), starting from the model's
   weights, training on the source's strong datasets (the boxes it was trained with) plus the site's datasets, with
   the fine-tune recipe (:func:`wssdl_d2.engine.finetune.finetune_config`): a constant ``base_lr`` without warm-up and
   a static MIL scale ``alpha`` for ``max_iter`` iterations (defaults: the model config's ``WSSDL.ADAPT``). The
   config is written to ``<out>/config.yaml``, so ``tools/train_net.py --config-file <out>/config.yaml --resume``
   continues a stopped run.
   With ``teacher`` (``tools/adapt_site.py --teacher``) the site's scans also get the label-aware mean teacher
   (:data:`SITE_TEACHER`): from the first iteration an EMA copy of the model pseudo-labels each weak scan within its
   diagnosis and the model learns those boxes too: self-training on the site's own scans.
3. :func:`adapt` trains it with :class:`~wssdl_d2.engine.WSSDLTrainer` (from ``<out>/last_checkpoint`` when
   resuming) and evaluates on the site's boxed test images when there are any.

The multiple-instance loss of each weak site image re-learns the classification scores of the site's masses from
its label, and its gradients move the trainable weights toward the site. A backbone with live BatchNorm also moves its
running statistics to the site's images; the BUSI configs' EfficientNet-Lite0 keeps ImageNet's (``FrozenBN``).
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog

from ..config import merge_pairs
from .finetune import finetune_config, write_config

logger = logging.getLogger(__name__)

#: A model's module names and the joint method's equivalents (same parameters): the adaptation switches to them.
JOINT_METHOD = {
    "MODEL.META_ARCHITECTURE": ({"GeneralizedRCNN", "WSSDLRCNN"}, "WSSDLRCNN"),
    "MODEL.PROPOSAL_GENERATOR.NAME": ({"RPN", "StrongOnlyRPN"}, "StrongOnlyRPN"),
    "MODEL.ROI_HEADS.NAME": ({"StandardROIHeads", "WSSDLROIHeads", "MILROIHeads"}, "MILROIHeads"),
}


#: The label-aware mean teacher of an adaptation with ``teacher`` (the keys not named here are the model config's,
#: by default LABEL_FILTER and KEEP_BEST on, adaptive per-class bars). No burn-in: the teacher starts as the trained
#: model itself; EMA decay 0.99 (a time constant of 100 iterations) and a 200-iteration window for the adaptive
#: bars, as configs/BUSI/wssdl_teacher.yaml. Evaluations use the student, so a source model without a teacher is
#: evaluated the same way before and after.
SITE_TEACHER = {"ENABLED": True, "BURN_IN": 0, "EMA_DECAY": 0.99, "ADAPTIVE.WINDOW": 200, "EVAL_WITH": "student"}


def _get(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg: CfgNode, key: str, value) -> None:
    *path, last = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    node[last] = value


def to_joint_method(cfg: CfgNode) -> CfgNode:
    """Switch ``cfg`` (unfrozen, in place) to the joint method's modules (:data:`JOINT_METHOD`). Raises ValueError
    naming the key when the model uses a module that has no joint equivalent. Returns ``cfg``."""
    for key, (known, joint) in JOINT_METHOD.items():
        value = _get(cfg, key)
        if value not in known:
            raise ValueError(f"{key} {value!r}: site adaptation knows {sorted(known)} (switched to {joint})")
        _set(cfg, key, joint)
    return cfg


def source_strong_datasets(names: Sequence[str]) -> List[str]:
    """The registered datasets of ``names`` that hold images with boxes (a dataset of weak images only is left
    out: the adaptation's weak images are the site's)."""
    return [n for n in names if any(d.get("supervision") != "weak" for d in DatasetCatalog.get(n))]


def prepare_site(site_dir: str, dataset_root: str, name: str, boxes: int = 0, seed: int = 0,
                 overwrite: bool = False) -> Tuple[str, Optional[str]]:
    """Prepare a site's scans (BUSI's layout, masks optional) into ``<dataset_root>/<name>/`` and register them.

    ``boxes``: the number of scans with a lesion mask that keep their boxes (nested for one seed; 0: every scan
    weak). Returns the registered names (weak dataset, strong dataset or None). Raises FileExistsError when
    ``<dataset_root>/<name>`` holds another dataset (unless ``overwrite``), ValueError when fewer than ``boxes``
    scans have a mask, :class:`~wssdl_d2.data.errors.DatasetError` naming bad files."""
    from ..data import register_datasets_under
    from ..data.prepare import prepare_pool

    out = os.path.join(dataset_root, name)
    report_path = os.path.join(out, "meta", "report.json")
    if os.path.exists(out) and not overwrite:
        previous = None
        if os.path.isfile(report_path):
            with open(report_path) as f:
                previous = json.load(f).get("root")
        if previous != os.path.abspath(site_dir):
            raise FileExistsError(f"{out} exists and was not prepared from {site_dir}; choose another --site-name "
                                  f"or pass --overwrite")
    prepare_pool(site_dir, out, strong_fractions=(), val_fraction=0.0, seed=seed, name=name,
                 strong_counts=(int(boxes),), require_masks=False, log=logger.info)
    register_datasets_under(dataset_root)
    weak, strong = f"{name}_train_weak_n{int(boxes)}", f"{name}_train_strong_n{int(boxes)}"
    return weak, (strong if boxes else None)


def adaptation_settings(cfg: CfgNode, max_iter: Optional[int] = None, base_lr: Optional[float] = None,
                        alpha: Optional[float] = None) -> Tuple[int, float, float]:
    """(iterations, constant learning rate, static MIL scale alpha) of an adaptation: each given value, else
    ``cfg``'s ``WSSDL.ADAPT`` default (MAX_ITER, BASE_LR, ALPHA). Raises ValueError naming them unless
    iterations >= 1, learning rate > 0 and alpha in [0, 1]."""
    defaults = cfg.WSSDL.ADAPT
    max_iter = int(defaults.MAX_ITER if max_iter is None else max_iter)
    base_lr = float(defaults.BASE_LR if base_lr is None else base_lr)
    alpha = float(defaults.ALPHA if alpha is None else alpha)
    if max_iter < 1 or base_lr <= 0 or not 0 <= alpha <= 1:
        raise ValueError(f"max_iter must be >= 1, base_lr > 0 and alpha in [0, 1], not {max_iter}, {base_lr}, "
                         f"{alpha}")
    return max_iter, base_lr, alpha


def adaptation_config(model_cfg: CfgNode, weights: str, source_train: Sequence[str], site_train: Sequence[str],
                      output_dir: str, max_iter: Optional[int] = None, base_lr: Optional[float] = None,
                      alpha: Optional[float] = None, site_test: Sequence[str] = (), overrides: Sequence = (),
                      write: bool = True, teacher: bool = False) -> CfgNode:
    """The fine-tuning config (frozen), also written to ``<output_dir>/config.yaml`` (unless ``write`` is False).

    Args:
        model_cfg: the config the model was trained with (its run folder's config.yaml).
        weights: the model's checkpoint (loaded weights-only).
        source_train: registered datasets with the source's boxed images (e.g. ``busi_train_strong_10``).
        site_train: the site's registered datasets: its weak images, and its boxed ones if any.
        output_dir: the run folder.
        max_iter, base_lr: iterations, and the learning rate (constant: no warm-up, no steps); None:
            ``model_cfg``'s WSSDL.ADAPT.MAX_ITER / BASE_LR (300, 0.002 by default).
        alpha: the MIL loss scale, static; None: WSSDL.ADAPT.ALPHA (0.5 by default).
        site_test: the site's boxed test datasets, evaluated at the end (none: no evaluation).
        overrides: KEY VALUE pairs applied last (command-line style).
        write: write ``<output_dir>/config.yaml`` (cross-validation writes it when a run starts).
        teacher: also train on the label-aware mean teacher's pseudo-boxes on the site's weak scans
            (:data:`SITE_TEACHER` set under ``WSSDL.TEACHER``, before ``overrides``).

    The learning rate is constant whatever schedule the model was trained with (the fine-tune recipe,
    :func:`wssdl_d2.engine.finetune.finetune_config`), so the same command adapts a model of any recipe alike.
    """
    max_iter, base_lr, alpha = adaptation_settings(model_cfg, max_iter, base_lr, alpha)
    if not site_train:
        raise ValueError("no site dataset to adapt to")
    cfg = model_cfg.clone()
    cfg.defrost()
    to_joint_method(cfg)
    cfg = finetune_config(cfg, weights, tuple(source_train) + tuple(site_train), output_dir, base_lr, alpha,
                          max_iter)
    cfg.DATASETS.TEST = tuple(site_test)
    cfg.SOLVER.CHECKPOINT_PERIOD = min(int(cfg.SOLVER.CHECKPOINT_PERIOD), max(1, int(max_iter) // 4))
    cfg.TEST.EVAL_PERIOD = 0
    if teacher:
        for key, value in SITE_TEACHER.items():
            _set(cfg, f"WSSDL.TEACHER.{key}", value)
    merge_pairs(cfg, overrides)
    cfg.freeze()
    if write:
        write_config(cfg, output_dir)
    return cfg


def adapt(cfg: CfgNode, resume: bool = False) -> Dict[str, object]:
    """Train the adaptation ``cfg`` (continuing from ``OUTPUT_DIR/last_checkpoint`` when ``resume``). Returns
    ``{"weights": final checkpoint, "results": the final evaluation's results (empty without DATASETS.TEST)}``."""
    from .trainer import train_to_final

    final, results = train_to_final(cfg, resume)
    return {"weights": final, "results": results}
