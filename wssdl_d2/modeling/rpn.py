"""An RPN whose losses come from strongly labelled images only.

Weak images (image label, no boxes) still get proposals, but they must not teach the RPN that everything is
background: their anchors are left out of the objectness and box-regression losses. A batch with no strong
image returns both RPN losses as ``0 * sum(predictions)``: exactly zero gradient to the RPN head, while every
parameter stays in the graph (DistributedDataParallel needs that).
"""
from detectron2.modeling import PROPOSAL_GENERATOR_REGISTRY
from detectron2.modeling.proposal_generator import RPN


@PROPOSAL_GENERATOR_REGISTRY.register()
class StrongOnlyRPN(RPN):
    """Detectron2's RPN with ``forward(images, features, gt_instances, strong=None)``.

    ``strong``: None (every image is strong: the plain RPN) or a sequence of N bools, True for images whose
    boxes are trusted. In training, anchors are labelled and the losses normalised over the strong images only
    (the per-image normalisation of the plain RPN: ``BATCH_SIZE_PER_IMAGE * number of strong images``).
    Inference is the plain RPN.
    """

    _strong_index = None  # set for the duration of a forward pass with weak images in the batch

    def forward(self, images, features, gt_instances=None, strong=None):
        if not self.training or strong is None or all(strong):
            return super().forward(images, features, gt_instances)
        if len(strong) != len(images):
            raise ValueError(f"StrongOnlyRPN: {len(strong)} supervision flags for {len(images)} images")
        self._strong_index = [i for i, s in enumerate(strong) if s]
        try:
            return super().forward(images, features, gt_instances)
        finally:
            self._strong_index = None

    def label_and_sample_anchors(self, anchors, gt_instances):
        """Anchor labels for the strong images only (a list as long as the number of strong images)."""
        if self._strong_index is not None:
            gt_instances = [gt_instances[i] for i in self._strong_index]
        return super().label_and_sample_anchors(anchors, gt_instances)

    def losses(self, anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        """The plain RPN losses over the strong rows of the predictions ``(N, sum(Hi*Wi*A)[, 4])``."""
        if self._strong_index is not None:
            if not self._strong_index:
                zero = sum(x.sum() for x in pred_objectness_logits) * 0.0
                return {"loss_rpn_cls": zero, "loss_rpn_loc": sum(x.sum() for x in pred_anchor_deltas) * 0.0}
            index = self._strong_index
            pred_objectness_logits = [x[index] for x in pred_objectness_logits]
            pred_anchor_deltas = [x[index] for x in pred_anchor_deltas]
        return super().losses(anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
