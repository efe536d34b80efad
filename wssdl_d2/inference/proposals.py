"""One test-time forward pass of a trained detector that keeps what the final detections hide: the backbone
features, every proposal's class logits, and the proposal each detection came from.

It is Detectron2's ``GeneralizedRCNN.inference`` (same resize, preprocessing, RPN, box head and
``FastRCNNOutputLayers.inference``) taken apart, so its detections are the model's detections. Self-training
reads the top detection, active annotation the mass of interest's class distribution, and Grad-CAM
(:mod:`wssdl_d2.inference.saliency`) back-propagates the logit behind a detection; run it under
``torch.no_grad()`` unless gradients are wanted.
"""
from dataclasses import dataclass
from typing import Any, Dict, Union

import numpy as np
import torch
from detectron2.modeling.postprocessing import detector_postprocess




@dataclass
class ProposalForward:
    """Outputs of :func:`forward_with_proposals` for one image.

    ``features``: backbone outputs name -> (1, C, h, w); ``proposal_boxes``: (R, 4) XYXY in the resized input's
    pixels, sorted by objectness; ``class_logits``: (R, K + 1), background last; ``instances``: the final
    detections in the original image's pixels; ``kept``: (D,) long, the proposal row of each detection;
    ``input_size`` (h, w) of the resized input, ``padded_size`` (h', w') of the padded batch tensor the
    backbone saw (the input sits in its top-left corner), and ``image_size`` (H, W) of the original.
    """

    features: dict
    proposal_boxes: torch.Tensor
    class_logits: torch.Tensor
    instances: object
    kept: torch.Tensor
    input_size: tuple
    padded_size: tuple
    image_size: tuple

    def to_original(self, boxes: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
        """(N, 4) XYXY boxes of the resized input as a float32 numpy array in the original image's pixels."""
        boxes = torch.as_tensor(boxes).detach().to("cpu", torch.float32).reshape(-1, 4).numpy().copy()
        (h, w), (height, width) = self.input_size, self.image_size
        boxes[:, 0::2] *= width / w
        boxes[:, 1::2] *= height / h
        return boxes


def forward_with_proposals(model: torch.nn.Module, inputs: Dict[str, Any]) -> ProposalForward:
    """Run ``model`` (a GeneralizedRCNN in eval mode, e.g. ``WSSDLPredictor.model``) on one input dict of
    :func:`model_inputs`. Returns a :class:`ProposalForward`. Gradients flow when enabled by the caller."""
    images = model.preprocess_image([inputs])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    heads = model.roi_heads
    box_features = heads.box_pooler([features[f] for f in heads.box_in_features],
                                    [p.proposal_boxes for p in proposals])
    predictions = heads.box_predictor(heads.box_head(box_features))
    with torch.no_grad():
        detached = tuple(p.detach() for p in predictions)
        (instances,), (kept,) = heads.box_predictor.inference(detached, proposals)
        valid = torch.isfinite(heads.box_predictor.predict_boxes(detached, proposals)[0]).all(dim=1) \
            & torch.isfinite(detached[0]).all(dim=1)
        if not valid.all():  # Detectron2 drops non-finite rows before indexing: map back to proposal rows
            kept = valid.nonzero()[:, 0][kept]
    height, width = inputs["height"], inputs["width"]
    return ProposalForward(
        features=features, proposal_boxes=proposals[0].proposal_boxes.tensor.detach(), class_logits=predictions[0],
        instances=detector_postprocess(instances, height, width), kept=kept, input_size=tuple(images.image_sizes[0]),
        padded_size=tuple(images.tensor.shape[-2:]), image_size=(height, width))
