"""An RPN whose losses come from strongly labelled images (and, with a mean teacher, from trusted pseudo boxes).

Weak images (image label, no boxes) still get proposals, but they must not teach the RPN that everything is
background: their anchors are left out of the objectness and box-regression losses. A batch with no strong
image returns both RPN losses as ``0 * sum(predictions)``: exactly zero gradient to the RPN head, while every
parameter stays in the graph (DistributedDataParallel needs that).

With the label-aware mean teacher (:mod:`wssdl_d2.teacher`), weak images whose pseudo boxes are trusted
(``pseudo``) add ``loss_rpn_cls_pseudo``: the objectness loss of their anchors labelled by the pseudo boxes (a
normal image: every sampled anchor is background), normalised like the strong loss over those images; no
box-regression loss comes from pseudo boxes.
"""
from detectron2.modeling import PROPOSAL_GENERATOR_REGISTRY
from detectron2.modeling.proposal_generator import RPN


@PROPOSAL_GENERATOR_REGISTRY.register()
class StrongOnlyRPN(RPN):
    """Detectron2's RPN with ``forward(images, features, gt_instances, strong=None, pseudo=None)``.

    ``strong``: None (every image is strong: the plain RPN) or a sequence of N bools, True for images whose
    boxes are trusted. In training, anchors are labelled and the losses normalised over the strong images only
    (the per-image normalisation of the plain RPN: ``BATCH_SIZE_PER_IMAGE * number of strong images``).
    ``pseudo``: None or N bools, True for weak images whose ``gt_instances`` are trusted pseudo boxes
    (``loss_rpn_cls_pseudo``, present whenever ``pseudo`` is given). Inference is the plain RPN.
    """

    _strong_index = None  # set for the duration of a forward pass with weak images in the batch
    _pseudo_index = None  # the images with pseudo boxes, when the forward pass has some

    def forward(self, images, features, gt_instances=None, strong=None, pseudo=None):
        if not self.training or strong is None or (all(strong) and pseudo is None):
            return super().forward(images, features, gt_instances)
        if len(strong) != len(images) or (pseudo is not None and len(pseudo) != len(images)):
            raise ValueError(f"StrongOnlyRPN: {len(strong)} supervision flags / {len(pseudo or [])} pseudo flags "
                             f"for {len(images)} images")
        self._strong_index = [i for i, s in enumerate(strong) if s]
        self._pseudo_index = None if pseudo is None else [i for i, (s, p) in enumerate(zip(strong, pseudo))
                                                           if p and not s]
        try:
            return super().forward(images, features, gt_instances)
        finally:
            self._strong_index = self._pseudo_index = None

    def _labelled_index(self):
        return self._strong_index + (self._pseudo_index or [])

    def label_and_sample_anchors(self, anchors, gt_instances):
        """Anchor labels for the strong images (then the pseudo-labelled ones) only."""
        if self._strong_index is not None:
            gt_instances = [gt_instances[i] for i in self._labelled_index()]
        return super().label_and_sample_anchors(anchors, gt_instances)

    def _losses_of(self, rows, entries, anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        """The plain RPN losses over the prediction ``rows`` whose anchor labels are ``gt_labels[entries]``; both
        zero (with every prediction in the graph) when ``rows`` is empty."""
        if not rows:
            return {"loss_rpn_cls": sum(x.sum() for x in pred_objectness_logits) * 0.0,
                    "loss_rpn_loc": sum(x.sum() for x in pred_anchor_deltas) * 0.0}
        return super().losses(anchors, [x[rows] for x in pred_objectness_logits], [gt_labels[j] for j in entries],
                              [x[rows] for x in pred_anchor_deltas], [gt_boxes[j] for j in entries])

    def losses(self, anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        """The plain RPN losses over the strong rows of the predictions ``(N, sum(Hi*Wi*A)[, 4])``, and the
        objectness loss of the pseudo rows as ``loss_rpn_cls_pseudo``."""
        if self._strong_index is None:
            return super().losses(anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        args = (anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        out = {}
        if self._pseudo_index is not None:  # first, so that the rpn/num_*_anchors logs are the strong images'
            start = len(self._strong_index)
            pseudo = self._losses_of(self._pseudo_index, range(start, start + len(self._pseudo_index)), *args)
            out["loss_rpn_cls_pseudo"] = pseudo["loss_rpn_cls"]
        out.update(self._losses_of(self._strong_index, range(len(self._strong_index)), *args))
        return out
