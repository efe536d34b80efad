"""What a trained model says about weakly labelled images: their detections and their mass of interest (MoI).

:func:`analyze_records` runs a :class:`~wssdl_d2.inference.WSSDLPredictor`'s model over dataset dicts (with
``image_label``) and returns one :class:`ImageAnalysis` per image. Self-training uses the top detection
(:mod:`wssdl_d2.pseudo.selection`), active annotation the MoI's class distribution and the agreement of
the detections with the image label (:mod:`wssdl_d2.active.scoring`).

The MoI is chosen as in training, by the functions :class:`~wssdl_d2.modeling.roi_heads.MILROIHeads` uses
(:mod:`wssdl_d2.modeling.mass_of_interest`): among the test-time proposals that would form the MIL bag
(:func:`~wssdl_d2.modeling.mass_of_interest.mil_bag`, ``WSSDL.MIL.MAX_PROPOSALS``), by the rule the config sets
for the image's label (:func:`~wssdl_d2.modeling.mass_of_interest.moi_rules_from_config`) and
``WSSDL.MIL.SELECT_BY``.
"""
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..data.image_io import load_image
from ..data.labels import IMAGE_LABELS
from ..modeling.mass_of_interest import mil_bag, moi_rules_from_config, select_mass_of_interest
from .predictor import Prediction, model_inputs, prediction_from_instances
from .proposals import forward_with_proposals

logger = logging.getLogger(__name__)


@dataclass
class ImageAnalysis:
    """One image: ``file_name``, ``image_label`` (0 normal, 1 benign, 2 malignant), ``prediction``
    (:class:`~wssdl_d2.inference.Prediction`: detections in original pixels, by decreasing score), ``moi_box``
    (4,) XYXY original pixels of the MoI proposal (NaN without proposals), ``moi_probs`` (K + 1,) its softmax
    class distribution (benign, malignant, background), ``moi_rule`` and ``num_proposals``."""

    file_name: str
    image_label: int
    prediction: Prediction
    moi_box: np.ndarray
    moi_probs: np.ndarray
    moi_rule: str
    num_proposals: int

    def top_detection(self) -> Optional[Tuple[np.ndarray, int, float]]:
        """(box (4,), class, score) of the most confident detection, or None without detections."""
        p = self.prediction
        if not len(p.scores):
            return None
        return p.boxes[0], int(p.classes[0]), float(p.scores[0])

    def best_score(self, det_class: int) -> float:
        """Highest score of a detection of class ``det_class`` (0 benign, 1 malignant); 0 without one."""
        scores = self.prediction.scores[self.prediction.classes == det_class]
        return float(scores.max()) if len(scores) else 0.0


@torch.no_grad()
def analyze_image(predictor, image_bgr: np.ndarray, image_label: int, file_name: str = "") -> ImageAnalysis:
    """:class:`ImageAnalysis` of one (H, W, 3) uint8 BGR image with its image label, by ``predictor`` (a
    :class:`~wssdl_d2.inference.WSSDLPredictor`: its ``model`` and ``cfg`` are used)."""
    cfg = predictor.cfg
    if image_label not in IMAGE_LABELS:
        raise ValueError(f"{file_name}: image_label {image_label!r} is not 0, 1 or 2")
    out = forward_with_proposals(predictor.model, model_inputs(cfg, image_bgr))
    prediction = prediction_from_instances(out.instances, float(cfg.WSSDL.EVAL.SCORE_THRESH))
    rule = moi_rules_from_config(cfg)[image_label]
    logits = mil_bag(out.class_logits, int(cfg.WSSDL.MIL.MAX_PROPOSALS))
    if len(logits):
        moi = int(select_mass_of_interest(logits, rule, cfg.WSSDL.MIL.SELECT_BY))
        moi_box = out.to_original(out.proposal_boxes[moi])[0]
        moi_probs = logits[moi].softmax(dim=0).cpu().numpy().astype(np.float64)
    else:
        moi_box = np.full(4, np.nan, dtype=np.float32)
        moi_probs = np.full(logits.shape[1], np.nan)
    return ImageAnalysis(file_name, int(image_label), prediction, moi_box, moi_probs, rule, len(logits))


def analyze_records(predictor, records: Sequence[dict], progress: bool = True) -> List[ImageAnalysis]:
    """:class:`ImageAnalysis` of every dataset dict in ``records`` (``file_name``, ``image_label``), in order.
    An unreadable image raises :class:`~wssdl_d2.data.DatasetError` naming it."""
    predictor.model.eval()
    out = []
    for record in tqdm(records, desc="analysing images", unit="image", disable=not progress or len(records) < 2):
        image = load_image(record["file_name"], "BGR").pixels
        out.append(analyze_image(predictor, image, record["image_label"], record["file_name"]))
    return out
