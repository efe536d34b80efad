"""How right a trained teacher's pseudo boxes are, on weak images whose true boxes are known
(``tools/audit_teacher.py``): pseudo-box precision per class, for finding where the teacher drifts.

The teacher of a checkpoint (``MODEL.WEIGHTS``; its teacher weights with ``WSSDL.TEACHER.EVAL_WITH teacher``)
predicts on each weak image as in evaluation (no augmentation, original pixels), the pseudo-box rule of the config
(:mod:`.pseudo_labels`: label-aware or label-free, ``KEEP_BEST``) with the per-class bars the run had reached (the
checkpoint's thresholds window, :class:`~.thresholds.ClassThresholds`) turns the detections into pseudo boxes, and
:func:`wssdl_d2.pseudo.audit.audit` matches them to the true boxes of the same images (hit: IoU > 0.5).
"""
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from detectron2.structures import BoxMode

from ..data.image_io import read_image
from ..data.labels import THING_CLASSES
from ..model_zoo.safe_load import load_checkpoint
from ..pseudo.audit import summary
from .pseudo_labels import label_aware_target, label_free_target
from .thresholds import ClassThresholds

__all__ = ["checkpoint_thresholds", "teacher_pseudo_records", "class_summary"]


def checkpoint_thresholds(cfg) -> np.ndarray:
    """The per-class bars (NUM_CLASSES,) of ``cfg.MODEL.WEIGHTS``'s teacher (its thresholds window under the
    config's rule). ValueError naming the file when it holds no teacher."""
    checkpoint = load_checkpoint(cfg.MODEL.WEIGHTS, allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS)
    teacher = checkpoint.get("teacher")
    if not isinstance(teacher, dict) or "thresholds" not in teacher:
        raise ValueError(f"{cfg.MODEL.WEIGHTS}: not a checkpoint of a run with WSSDL.TEACHER.ENABLED (no teacher)")
    bars = ClassThresholds.from_config(cfg)
    bars.load_state_dict(teacher["thresholds"])
    return bars.thresholds()


def teacher_pseudo_records(cfg, weak_dicts: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The weak dicts as pseudo-labelled Detectron2 dicts (``supervision: pseudo``, one XYXY annotation per pseudo
    box with its ``score``; no annotation for a normal or untrusted image), by ``cfg.MODEL.WEIGHTS``'s teacher."""
    from ..inference.predictor import WSSDLPredictor

    predictor = WSSDLPredictor(cfg)
    bars = checkpoint_thresholds(cfg)
    t = cfg.WSSDL.TEACHER
    records = []
    for d in weak_dicts:
        p = predictor(read_image(d["file_name"]))  # BGR: the predictor converts to INPUT.FORMAT itself
        boxes, scores, classes = (torch.as_tensor(x) for x in (p.boxes, p.scores, p.classes))
        if t.LABEL_FILTER:
            target = label_aware_target(boxes, scores, classes, int(d["image_label"]), bars, bool(t.KEEP_BEST))
        else:
            target = label_free_target(boxes, scores, classes, bars)
        annotations = [{"bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYXY_ABS, "category_id": int(c),
                        "score": float(s)}
                       for box, c, s in zip(target.boxes.tolist(), target.classes.tolist(), target.scores.tolist())]
        records.append({**d, "supervision": "pseudo", "annotations": annotations})
    return records


def class_summary(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """:func:`wssdl_d2.pseudo.audit.summary` of the audit rows, overall and for each pseudo-box class."""
    lines = summary(rows)
    for c, name in enumerate(THING_CLASSES):
        lines.append(f"{name} pseudo boxes - " + summary([r for r in rows if r["class"] == c])[0])
    return lines
