"""MILROIHeads: Fast R-CNN losses on strong images, the multiple-instance (MoI) loss on weak images.

In training, strong images contribute their sampled proposals (Detectron2's matching and sampling) and get
``loss_cls`` and ``loss_box_reg`` (Detectron2's FastRCNNOutputLayers.losses). Weak images contribute their
top-K post-NMS RPN proposals (no sampling, no matching) as a bag; the mass of interest of each bag gives
``loss_mil = alpha * L_ws`` (:func:`wssdl_d2.modeling.mil_loss.mil_cross_entropy`), and no box-regression loss.
Only the MoI row of a bag receives a gradient, so when the box head treats boxes independently (no BatchNorm)
the bags are scored without autograd and the MoI rows are recomputed with it: the same loss and gradients as a
full-bag pass at a fraction of the backward cost. At inference this is :class:`~wssdl_d2.modeling.box_predictor.WSSDLROIHeads`.

With the label-aware mean teacher (:mod:`wssdl_d2.teacher`), weak images whose pseudo boxes are trusted are also
matched and sampled against those boxes (a normal image's proposals are all background) and give
``loss_cls_pseudo``: Fast R-CNN's classification loss over their samples; their MIL bags are unchanged.

With ``WSSDL.MIL.CLASS_WEIGHTING: inverse_frequency`` the class weights depend on the weak training set, which a
model does not see: :class:`~wssdl_d2.engine.WSSDLTrainer` calls :meth:`MILROIHeads.set_class_weights` with
:func:`~wssdl_d2.modeling.mil_loss.class_weights_from_config` of its weak images; any other training loop does
the same (or passes ``mil_class_weights`` to the constructor).
"""
from typing import List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.utils.events import get_event_storage

from ..data.labels import IMAGE_LABELS, NORMAL, THING_CLASSES, image_label_to_class
from .alpha import alpha_at
from .box_predictor import WSSDLROIHeads
from .mass_of_interest import SELECT_BY, check_moi_rule, mil_bag, moi_rules_from_config
from .mil_loss import CLASS_WEIGHTINGS, class_weights_from_config, mil_loss


@ROI_HEADS_REGISTRY.register()
class MILROIHeads(WSSDLROIHeads):
    """WSSDLROIHeads (StandardROIHeads scoring per ``WSSDL.TEST.DETECTION_SCORE``) with
    ``forward(images, features, proposals, targets, strong=None, image_labels=None)``.

    ``mil_alpha`` (float, the current alpha) is set before every iteration by
    :class:`~wssdl_d2.engine.hooks.MILAlphaHook`; ``mil_class_weights`` (None or 3 floats indexed by image label)
    comes from the config, or for ``CLASS_WEIGHTING: inverse_frequency`` from :meth:`set_class_weights`.
    """

    @configurable
    def __init__(self, *, mil_max_proposals=0, moi_rules=None, mil_select_by="prob", mil_use_normal=True,
                 mil_class_weighting="none", mil_class_weights=None, mil_alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if self.mask_on or self.keypoint_on or self.train_on_pred_boxes:
            raise ValueError("MILROIHeads supports boxes only: set MODEL.MASK_ON, MODEL.KEYPOINT_ON and "
                             "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES to False")
        if self.num_classes != len(THING_CLASSES):
            raise ValueError(f"MILROIHeads needs MODEL.ROI_HEADS.NUM_CLASSES {len(THING_CLASSES)} (benign, malignant), "
                             f"not {self.num_classes}")
        if mil_select_by not in SELECT_BY:
            raise ValueError(f"WSSDL.MIL.SELECT_BY must be one of {SELECT_BY}, not {mil_select_by!r}")
        if mil_class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"WSSDL.MIL.CLASS_WEIGHTING must be one of {CLASS_WEIGHTINGS}, "
                             f"not {mil_class_weighting!r}")
        if mil_max_proposals < 0:
            raise ValueError(f"WSSDL.MIL.MAX_PROPOSALS must be >= 0 (0: all), not {mil_max_proposals}")
        moi_rules = moi_rules or {0: "most_abnormal", 1: "most_malignant", 2: "most_malignant"}
        self.moi_rules = {label: check_moi_rule(rule) for label, rule in moi_rules.items()}
        self.mil_max_proposals = int(mil_max_proposals)
        self.mil_select_by = mil_select_by
        self.mil_use_normal = bool(mil_use_normal)
        self.mil_class_weighting = mil_class_weighting
        self.mil_class_weights = None
        if mil_class_weights is not None:
            self.set_class_weights(mil_class_weights)
        self.mil_alpha = float(mil_alpha)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        mil = cfg.WSSDL.MIL
        weighting = str(mil.CLASS_WEIGHTING).lower()
        ret.update(
            mil_max_proposals=mil.MAX_PROPOSALS,
            moi_rules=moi_rules_from_config(cfg),
            mil_select_by=mil.SELECT_BY,
            mil_use_normal=mil.USE_NORMAL,
            mil_class_weighting=weighting,
            # inverse_frequency needs the weak set: set_class_weights (WSSDLTrainer calls it)
            mil_class_weights=class_weights_from_config(cfg) if weighting != "inverse_frequency" else None,
            mil_alpha=alpha_at(0, cfg),
        )
        return ret

    def set_class_weights(self, weights: Sequence[float]) -> None:
        """Set the weak loss's class weights: 3 non-negative floats indexed by image label (normal, benign,
        malignant), e.g. :func:`~wssdl_d2.modeling.mil_loss.class_weights_from_config` of the weak training
        images' labels."""
        weights = [float(w) for w in weights]
        if len(weights) != len(IMAGE_LABELS) or min(weights) < 0:
            raise ValueError(f"MILROIHeads: class weights must be {len(IMAGE_LABELS)} non-negative numbers "
                             f"(normal, benign, malignant), not {weights}")
        self.mil_class_weights = weights

    def class_weights(self) -> Optional[List[float]]:
        """The weak loss's class weights (None: unweighted). Raises RuntimeError, saying what to do, for
        ``CLASS_WEIGHTING: inverse_frequency`` before :meth:`set_class_weights` was called."""
        if self.mil_class_weighting == "inverse_frequency" and self.mil_class_weights is None:
            raise RuntimeError(
                "MILROIHeads: WSSDL.MIL.CLASS_WEIGHTING is inverse_frequency but no class weights were set. Call "
                "roi_heads.set_class_weights(wssdl_d2.modeling.mil_loss.class_weights_from_config(cfg, "
                "weak_image_labels)) before training (WSSDLTrainer does), or use CLASS_WEIGHTING explicit with "
                "WSSDL.MIL.CLASS_WEIGHTS")
        return self.mil_class_weights

    def forward(self, images, features, proposals, targets=None, strong=None, image_labels=None, pseudo=None):
        """Training with ``strong`` (N bools) and ``image_labels`` (N ints, 0 normal / 1 benign / 2 malignant):
        ``([], losses)`` with ``loss_cls``, ``loss_box_reg`` and ``loss_mil`` (scalar tensors); with ``pseudo``
        (N bools: weak images whose ``targets`` are a mean teacher's trusted pseudo boxes) also ``loss_cls_pseudo``,
        Fast R-CNN's classification loss of their sampled proposals (no box regression from pseudo boxes).
        Otherwise (and at inference) StandardROIHeads.forward."""
        if not self.training or strong is None:
            return super().forward(images, features, proposals, targets)
        if not targets:
            raise ValueError("MILROIHeads: 'targets' (one Instances per image) are required in training")
        labels_ok = image_labels is None or len(image_labels) == len(strong)
        if not (len(strong) == len(proposals) == len(targets)) or not labels_ok or \
                (pseudo is not None and len(pseudo) != len(strong)):
            raise ValueError(f"MILROIHeads: {len(proposals)} images but {len(strong)} supervision flags / "
                             f"{len(image_labels or [])} image labels / {len(pseudo or [])} pseudo flags")
        weak_ids = [i for i, s in enumerate(strong) if not s]
        if not weak_ids:
            proposals, losses = super().forward(images, features, proposals, targets)
            losses["loss_mil"] = losses["loss_cls"].new_zeros(())
            if pseudo is not None:
                losses["loss_cls_pseudo"] = losses["loss_cls"].new_zeros(())
            return proposals, losses
        if image_labels is None:
            raise ValueError("MILROIHeads: weak images need their image_label")
        return [], self._joint_losses(features, proposals, targets, strong, image_labels, pseudo)

    def _mil_bag(self, proposals_per_image, image_label):
        """The proposals (Boxes) of a weak image that enter its MIL bag (:func:`.mass_of_interest.mil_bag`), none
        for a normal image when USE_NORMAL is off."""
        if image_label == NORMAL and not self.mil_use_normal:
            return proposals_per_image.proposal_boxes[:0]
        return mil_bag(proposals_per_image.proposal_boxes, self.mil_max_proposals)

    def _predict(self, features, boxes):
        """Class logits and box deltas of the boxes (one Boxes per image, may be empty), rows in image order."""
        return self.box_predictor(self.box_head(self.box_pooler(features, boxes)))

    def _rows_are_independent(self):
        """True when the box head's output for a box does not depend on the other boxes in the batch (no
        BatchNorm in training mode): the MoI row can then be recomputed alone."""
        return not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
                       for m in self.box_head.modules())

    def _joint_losses(self, features, proposals, targets, strong, image_labels, pseudo=None):
        features = [features[f] for f in self.box_in_features]
        empty = proposals[0].proposal_boxes[:0]
        strong_ids = [i for i, s in enumerate(strong) if s]
        pseudo_ids = [] if pseudo is None else [i for i, (s, p) in enumerate(zip(strong, pseudo)) if p and not s]
        sampled = {}
        for ids in (pseudo_ids, strong_ids):  # strong last: the roi_head/* logs are the strong images'
            if ids:
                sampled.update(zip(ids, self.label_and_sample_proposals([proposals[i] for i in ids],
                                                                        [targets[i] for i in ids])))
        if sampled:
            boxes = [sampled[i].proposal_boxes if i in sampled else empty for i in range(len(strong))]
            counts = [len(b) for b in boxes]
            per_image = [x.split(counts) for x in self._predict(features, boxes)]  # (scores, deltas) per image

            def losses_of(ids):
                rows = tuple(torch.cat([x[i] for i in ids]) for x in per_image)
                return self.box_predictor.losses(rows, [sampled[i] for i in ids])

            pseudo_losses = losses_of(pseudo_ids) if pseudo_ids else None  # first: fast_rcnn/* logs are strong
            if strong_ids:
                losses = losses_of(strong_ids)
        bags = [self._mil_bag(p, y) if not s else empty for p, y, s in zip(proposals, image_labels, strong)]
        weak_ids = [i for i, b in enumerate(bags) if len(b)]
        if not weak_ids:
            moi_scores, moi_deltas = self._predict(features, [empty] * len(strong))
            mil = moi_scores.sum() * 0.0
        else:
            labels = [int(image_labels[i]) for i in weak_ids]
            rules = [self.moi_rules[y] for y in labels]
            counts = [len(b) for b in bags]
            # Only the MoI row gets a gradient: with row-independent heads, score the bags without autograd and
            # recompute the MoI rows with it (the same loss and gradients, without backward through every box).
            independent = self._rows_are_independent()
            with torch.set_grad_enabled(not independent):
                scores, moi_deltas = self._predict(features, bags)
            bag_scores = [scores.split(counts)[i] for i in weak_ids]

            def rescore(moi):
                nonlocal moi_deltas
                moi_boxes = [empty] * len(strong)
                for i, m in zip(weak_ids, moi):
                    moi_boxes[i] = bags[i][int(m):int(m) + 1]
                moi_scores, moi_deltas = self._predict(features, moi_boxes)
                return moi_scores

            out = mil_loss(bag_scores, labels, rules, self.mil_select_by, self.class_weights(),
                           rescore=rescore if independent else None)
            moi_scores = out.moi_scores
            mil = self._log_mil(out.loss, moi_scores, labels, sum(counts) / len(weak_ids))
        if not strong_ids:
            losses = {"loss_cls": moi_scores.sum() * 0.0, "loss_box_reg": moi_deltas.sum() * 0.0}
        losses["loss_mil"] = self.mil_alpha * mil
        if pseudo is not None:
            losses["loss_cls_pseudo"] = pseudo_losses["loss_cls"] if pseudo_ids else losses["loss_cls"] * 0.0
        return losses

    def _log_mil(self, loss, moi_scores, labels, bag_size):
        """Log the unscaled MIL loss, how often the MoI's top class is the image's, and the bag size."""
        with torch.no_grad():
            predicted = moi_scores.argmax(dim=1).tolist()
        hits = sum(p == image_label_to_class(y, self.num_classes) for p, y in zip(predicted, labels))
        storage = get_event_storage()
        storage.put_scalar("wssdl/mil_ce", loss.item())
        storage.put_scalar("wssdl/moi_class_accuracy", hits / len(labels))
        storage.put_scalar("wssdl/mil_bag_size", bag_size)
        return loss
