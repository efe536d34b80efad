"""The two models the benchmark compares, built from one config with the same weights, and their inputs.

The joint model is the config's (``WSSDLRCNN`` + ``StrongOnlyRPN`` + ``MILROIHeads`` for the ``wssdl*.yaml``
configs); the plain one is Detectron2's Faster R-CNN (``GeneralizedRCNN`` + ``RPN`` + ``StandardROIHeads``) from
the same config, so backbone, heads and weights are identical and only the method's code differs.
"""
from typing import Any, Dict, List, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from ..config import merge_config
from ..data.mapper import WSSDLDatasetMapper

PLAIN_OVERRIDES = ["MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "MODEL.PROPOSAL_GENERATOR.NAME", "RPN",
                   "MODEL.ROI_HEADS.NAME", "StandardROIHeads"]
TIMING_LR = 1e-4  # small, so repeated steps on one batch hardly change the model (and its proposals)


def load_cfg(config_file: str, opts=(), device: str = "") -> CfgNode:
    """The joint model's config (:func:`wssdl_d2.config.merge_config`, unfrozen): ``config_file`` + ``opts``
    (KEY VALUE list); ``device`` ("cpu", "cuda", ...) overrides MODEL.DEVICE; CUDA falls back to the CPU when
    absent."""
    return merge_config(config_file, opts, device=device or None)


def plain_cfg(cfg: CfgNode) -> CfgNode:
    """A copy of ``cfg`` building Detectron2's plain Faster R-CNN."""
    plain = cfg.clone()
    plain.defrost()
    plain.merge_from_list(PLAIN_OVERRIDES)
    return plain


def load_weights(model: torch.nn.Module, cfg: CfgNode) -> torch.nn.Module:
    """Load ``cfg.MODEL.WEIGHTS`` (if set) into ``model`` through the project's weights-only checkpointer."""
    if cfg.MODEL.WEIGHTS:
        from ..model_zoo import load_model_weights

        load_model_weights(model, cfg.MODEL.WEIGHTS, allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS)
    return model


def build_pair(cfg: CfgNode) -> Dict[str, torch.nn.Module]:
    """{"joint": model, "plain": model}: both on ``cfg.MODEL.DEVICE`` with the same weights (the joint model's
    initialisation, or ``MODEL.WEIGHTS``). The joint model's MIL weight alpha is fixed at 1 so every weak image
    costs its full MIL pass."""
    torch.manual_seed(0)
    joint = load_weights(build_model(cfg), cfg)
    plain = build_model(plain_cfg(cfg))
    plain.load_state_dict(joint.state_dict())
    set_full_mil(joint)
    return {"joint": joint, "plain": plain}


def set_full_mil(model: torch.nn.Module) -> None:
    """Fix a MIL model's alpha at 1 (no-op for models without MIL heads)."""
    if hasattr(model.roi_heads, "mil_alpha"):
        model.roi_heads.mil_alpha = 1.0


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The config's optimizer (type, momentum, weight decay, gradient clipping) at learning rate ``TIMING_LR``."""
    from ..engine.trainer import WSSDLTrainer

    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.BASE_LR = TIMING_LR
    return WSSDLTrainer.build_optimizer(cfg, model)


def training_batches(cfg: CfgNode, dataset: str) -> Dict[str, List[Dict[str, Any]]]:
    """{"joint": batch, "plain": batch}: the same ``STRONG_PER_BATCH + WEAK_PER_BATCH`` images of ``dataset``
    (the first with boxes), mapped for training. The plain batch keeps every image's boxes; in the joint batch
    the last ``WEAK_PER_BATCH`` images are weak (boxes removed, image label kept)."""
    strong, weak = int(cfg.WSSDL.STRONG_PER_BATCH), int(cfg.WSSDL.WEAK_PER_BATCH)
    dicts = [d for d in DatasetCatalog.get(dataset) if d.get("annotations")][: strong + weak]
    if len(dicts) < strong + weak:
        raise ValueError(f"{dataset}: needs {strong + weak} images with boxes, has {len(dicts)}")
    torch.manual_seed(0)
    mapper = WSSDLDatasetMapper(cfg, is_train=True)
    plain = [mapper({**d, "supervision": "strong"}) for d in dicts]
    joint = [dict(x) for x in plain]
    for x in joint[strong:]:
        x["supervision"] = "weak"
        x["instances"] = x["instances"][:0]
    return {"joint": joint, "plain": plain}


def test_images(cfg: CfgNode, dataset: str, count: int) -> List[Dict[str, Any]]:
    """The first ``count`` images of ``dataset`` mapped for inference (DatasetMapper(cfg, False), as the
    evaluation loader): dicts with ``image``, ``height`` and ``width``."""
    mapper = DatasetMapper(cfg, is_train=False)
    dicts = DatasetCatalog.get(dataset)[:count]
    if not dicts:
        raise ValueError(f"{dataset} has no image")
    return [{k: v for k, v in mapper(d).items() if k in ("image", "height", "width")} for d in dicts]


def pack_batch(batch: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``batch`` (mapped training dicts) as plain tensors and numbers, loadable with ``torch.load(...,
    weights_only=True)``; :func:`unpack_batch` rebuilds it."""
    packed = []
    for x in batch:
        item = {k: x[k] for k in ("image", "height", "width", "supervision", "image_label") if k in x}
        if "instances" in x:
            inst = x["instances"]
            item.update(image_size=list(inst.image_size), gt_boxes=inst.gt_boxes.tensor, gt_classes=inst.gt_classes)
        packed.append(item)
    return packed


def unpack_batch(packed: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Inverse of :func:`pack_batch`."""
    batch = []
    for item in packed:
        x = {k: v for k, v in item.items() if k not in ("image_size", "gt_boxes", "gt_classes")}
        if "gt_boxes" in item:
            x["instances"] = Instances(tuple(item["image_size"]), gt_boxes=Boxes(item["gt_boxes"]),
                                       gt_classes=item["gt_classes"])
        batch.append(x)
    return batch
