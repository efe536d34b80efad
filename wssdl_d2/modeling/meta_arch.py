"""WSSDLRCNN: GeneralizedRCNN that tells its RPN and ROI heads which images are strong or weak.

Training inputs are the mapped dicts of :class:`wssdl_d2.data.WSSDLDatasetMapper`: ``image``, ``instances``
(empty for weak images), ``supervision`` ("strong" | "weak" | "pseudo"; missing = strong) and ``image_label``
(0 normal, 1 benign, 2 malignant). Losses: the RPN's from strong images only (:class:`StrongOnlyRPN`),
Fast R-CNN's from strong images and ``loss_mil`` from weak images (:class:`MILROIHeads`).
With a mean teacher (:mod:`wssdl_d2.teacher`), the inputs of weak images also carry ``pseudo_target`` (bool: their
``instances`` are the teacher's trusted pseudo boxes); then ``loss_rpn_cls_pseudo`` and ``loss_cls_pseudo`` come
from those images, scaled by ``pseudo_loss_weight`` (``WSSDL.TEACHER.LOSS_WEIGHT``).
Inference is GeneralizedRCNN's, untouched: no cost at test time.
"""
from typing import Any, Dict

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.utils.events import get_event_storage

from ..data.labels import IMAGE_LABELS
from .roi_heads import MILROIHeads
from .rpn import StrongOnlyRPN


def is_strong(dataset_dict: Dict[str, Any]) -> bool:
    """True unless the dict is marked ``supervision: weak`` (pseudo-labelled images count as strong)."""
    return dataset_dict.get("supervision", "strong") != "weak"


@META_ARCH_REGISTRY.register()
class WSSDLRCNN(GeneralizedRCNN):
    """GeneralizedRCNN with a :class:`StrongOnlyRPN` proposal generator and :class:`MILROIHeads`."""

    @configurable
    def __init__(self, *, pseudo_loss_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.pseudo_loss_weight = float(pseudo_loss_weight)
        if not isinstance(self.proposal_generator, StrongOnlyRPN):
            raise ValueError("WSSDLRCNN needs MODEL.PROPOSAL_GENERATOR.NAME: StrongOnlyRPN, not "
                             f"{type(self.proposal_generator).__name__}")
        if not isinstance(self.roi_heads, MILROIHeads):
            raise ValueError(f"WSSDLRCNN needs MODEL.ROI_HEADS.NAME: MILROIHeads, not {type(self.roi_heads).__name__}")

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["pseudo_loss_weight"] = float(cfg.WSSDL.TEACHER.LOSS_WEIGHT)
        return ret

    def forward(self, batched_inputs):
        """Training: dict of losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``, ``loss_box_reg``,
        ``loss_mil``; with ``pseudo_target`` inputs also ``loss_rpn_cls_pseudo``, ``loss_cls_pseudo``). Inference:
        GeneralizedRCNN.inference."""
        if not self.training:
            return self.inference(batched_inputs)
        missing = [k for k, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"WSSDLRCNN: training inputs {missing} have no 'instances' (use WSSDLDatasetMapper)")
        strong = [is_strong(x) for x in batched_inputs]
        image_labels = [x.get("image_label") for x in batched_inputs]
        for x, s, y in zip(batched_inputs, strong, image_labels):
            if not s and y not in IMAGE_LABELS:
                raise ValueError(f"WSSDLRCNN: weak image {x.get('file_name', '?')} has image_label {y!r}, "
                                 "not 0, 1 or 2")

        pseudo = [bool(x.get("pseudo_target", False)) for x in batched_inputs] \
            if any("pseudo_target" in x for x in batched_inputs) else None

        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances, strong=strong,
                                                             pseudo=pseudo)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances, strong=strong,
                                            image_labels=image_labels, pseudo=pseudo)
        if self.vis_period > 0 and get_event_storage().iter % self.vis_period == 0:
            self.visualize_training(batched_inputs, proposals)
        losses = {**detector_losses, **proposal_losses}
        return {k: v * self.pseudo_loss_weight if k.endswith("_pseudo") else v for k, v in losses.items()}
