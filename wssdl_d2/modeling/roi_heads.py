"""MILROIHeads: Fast R-CNN losses on strong images, the multiple-instance (MoI) loss on weak images.

In training, one box-head pass serves the whole batch: strong images contribute their sampled proposals
(Detectron2's matching and sampling), weak images their top-K post-NMS RPN proposals (no sampling, no
matching); the class logits are then split back per image. Strong rows give ``loss_cls`` and ``loss_box_reg``
(Detectron2's FastRCNNOutputLayers.losses), weak rows give ``loss_mil = alpha * L_ws``
(:func:`wssdl_d2.modeling.mil_loss.mil_loss`). Weak images get no box-regression loss. At inference this is
StandardROIHeads, unchanged.
"""
import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.structures import Boxes
from detectron2.utils.events import get_event_storage

from .alpha import alpha_at
from .mass_of_interest import SELECT_BY, check_moi_rule
from .mil_loss import CLASS_WEIGHTINGS, class_weights_from_config, image_label_to_class, mil_loss


@ROI_HEADS_REGISTRY.register()
class MILROIHeads(StandardROIHeads):
    """StandardROIHeads with ``forward(images, features, proposals, targets, strong=None, image_labels=None)``.

    Attributes set by the trainer while training: ``mil_alpha`` (float, the current alpha) and, with
    ``CLASS_WEIGHTING: inverse_frequency``, ``mil_class_weights`` (3 floats indexed by image label).
    """

    @configurable
    def __init__(self, *, mil_max_proposals=0, moi_rules=None, mil_select_by="prob", mil_use_normal=True,
                 mil_class_weighting="none", mil_class_weights=None, mil_alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if self.mask_on or self.keypoint_on or self.train_on_pred_boxes:
            raise ValueError("MILROIHeads supports boxes only: set MODEL.MASK_ON, MODEL.KEYPOINT_ON and "
                             "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES to False")
        if self.num_classes != 2:
            raise ValueError(f"MILROIHeads needs MODEL.ROI_HEADS.NUM_CLASSES 2 (benign, malignant), not {self.num_classes}")
        if mil_select_by not in SELECT_BY:
            raise ValueError(f"WSSDL.MIL.SELECT_BY must be one of {SELECT_BY}, not {mil_select_by!r}")
        if mil_class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"WSSDL.MIL.CLASS_WEIGHTING must be one of {CLASS_WEIGHTINGS}, not {mil_class_weighting!r}")
        if mil_max_proposals < 0:
            raise ValueError(f"WSSDL.MIL.MAX_PROPOSALS must be >= 0 (0: all), not {mil_max_proposals}")
        moi_rules = moi_rules or {0: "most_abnormal", 1: "most_malignant", 2: "most_malignant"}
        self.moi_rules = {label: check_moi_rule(rule) for label, rule in moi_rules.items()}
        self.mil_max_proposals = int(mil_max_proposals)
        self.mil_select_by = mil_select_by
        self.mil_use_normal = bool(mil_use_normal)
        self.mil_class_weighting = mil_class_weighting
        self.mil_class_weights = mil_class_weights
        self.mil_alpha = float(mil_alpha)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        mil = cfg.WSSDL.MIL
        weighting = str(mil.CLASS_WEIGHTING).lower()
        ret.update(
            mil_max_proposals=mil.MAX_PROPOSALS,
            moi_rules={0: check_moi_rule(mil.MOI_NORMAL, "WSSDL.MIL.MOI_NORMAL"),
                       1: check_moi_rule(mil.MOI_BENIGN, "WSSDL.MIL.MOI_BENIGN"),
                       2: check_moi_rule(mil.MOI_MALIGNANT, "WSSDL.MIL.MOI_MALIGNANT")},
            mil_select_by=mil.SELECT_BY,
            mil_use_normal=mil.USE_NORMAL,
            mil_class_weighting=weighting,
            # inverse_frequency needs the weak set: the trainer sets it (see wssdl_d2.engine)
            mil_class_weights=class_weights_from_config(cfg) if weighting != "inverse_frequency" else None,
            mil_alpha=alpha_at(0, cfg),
        )
        return ret

    def forward(self, images, features, proposals, targets=None, strong=None, image_labels=None):
        """Training with ``strong`` (N bools) and ``image_labels`` (N ints): the joint losses. Otherwise (and
        at inference) StandardROIHeads.forward."""
        if not self.training or strong is None:
            return super().forward(images, features, proposals, targets)
        if not targets:
            raise ValueError("MILROIHeads: 'targets' (one Instances per image) are required in training")
        if not (len(strong) == len(proposals) == len(targets)) or (image_labels is not None and len(image_labels) != len(strong)):
            raise ValueError(f"MILROIHeads: {len(proposals)} images but {len(strong)} supervision flags / "
                             f"{len(image_labels or [])} image labels")
        weak_ids = [i for i, s in enumerate(strong) if not s]
        if not weak_ids:
            proposals, losses = super().forward(images, features, proposals, targets)
            losses["loss_mil"] = losses["loss_cls"].new_zeros(())
            return proposals, losses
        if image_labels is None:
            raise ValueError("MILROIHeads: weak images need their image_label")
        return [], self._joint_losses(features, proposals, targets, strong, image_labels)

    def _mil_bag(self, proposals_per_image, image_label):
        """The proposals (Boxes) of a weak image that enter its MIL bag: the top MAX_PROPOSALS by objectness
        (proposals arrive sorted), none for a normal image when USE_NORMAL is off."""
        if image_label == 0 and not self.mil_use_normal:
            return proposals_per_image.proposal_boxes[:0]
        boxes = proposals_per_image.proposal_boxes
        return boxes[: self.mil_max_proposals] if self.mil_max_proposals > 0 else boxes

    def _joint_losses(self, features, proposals, targets, strong, image_labels):
        strong_ids = [i for i, s in enumerate(strong) if s]
        sampled = self.label_and_sample_proposals([proposals[i] for i in strong_ids],
                                                  [targets[i] for i in strong_ids]) if strong_ids else []
        boxes = [None] * len(strong)
        for j, i in enumerate(strong_ids):
            boxes[i] = sampled[j].proposal_boxes
        for i, s in enumerate(strong):
            if not s:
                boxes[i] = self._mil_bag(proposals[i], image_labels[i])
        # one pooled pass over the batch, rows in image order
        box_features = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        scores, deltas = self.box_predictor(self.box_head(box_features))
        counts = [len(b) for b in boxes]
        scores_per_image, deltas_per_image = scores.split(counts), deltas.split(counts)

        if strong_ids:
            losses = self.box_predictor.losses(
                (torch.cat([scores_per_image[i] for i in strong_ids]), torch.cat([deltas_per_image[i] for i in strong_ids])),
                sampled)
        else:
            losses = {"loss_cls": scores.sum() * 0.0, "loss_box_reg": deltas.sum() * 0.0}
        losses["loss_mil"] = self._mil_loss(
            [(scores_per_image[i], image_labels[i]) for i, s in enumerate(strong) if not s and counts[i] > 0], scores)
        return losses

    def _mil_loss(self, bags, scores):
        """alpha * L_ws over the weak images with a non-empty bag [(scores (R_i, K + 1), image_label)]."""
        if not bags:
            return scores.sum() * 0.0
        if self.mil_class_weighting == "inverse_frequency" and self.mil_class_weights is None:
            raise RuntimeError("MILROIHeads: CLASS_WEIGHTING inverse_frequency but mil_class_weights was never set "
                               "(the trainer sets it from the weak training set)")
        bag_scores, labels = [b[0] for b in bags], [int(b[1]) for b in bags]
        loss, moi = mil_loss(bag_scores, labels, [self.moi_rules[y] for y in labels], self.mil_select_by,
                             self.mil_class_weights)
        with torch.no_grad():
            predicted = torch.stack([s[i].argmax() for s, i in zip(bag_scores, moi)]).tolist()
            hits = sum(p == image_label_to_class(y, self.num_classes) for p, y in zip(predicted, labels))
        storage = get_event_storage()
        storage.put_scalar("wssdl/mil_ce", loss.item())
        storage.put_scalar("wssdl/moi_class_accuracy", hits / len(labels))
        storage.put_scalar("wssdl/mil_bag_size", sum(len(s) for s in bag_scores) / len(bag_scores))
        return self.mil_alpha * loss
