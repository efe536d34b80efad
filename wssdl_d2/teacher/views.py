"""The two views of a weak image: the teacher's (weakly augmented) and the student's (strongly augmented).

The weak stream's augmentations (:func:`wssdl_d2.data.mapper.build_stream_augmentations`) are split by kind:

- the **teacher's view** gets their geometry only (crop margin, rotation, resize, flip; the ultrasound depth crop
  when ``WSSDL.AUG.ULTRASOUND`` is enabled): no intensity change, the teacher sees the image as it is;
- the **student's view** is the teacher's view (same pixels, same size) plus the stream's intensity changes
  (brightness, contrast, the enabled ultrasound intensity augmentations), and with ``WSSDL.TEACHER.STRONG_AUG``:
  the ultrasound intensity augmentations of ``WSSDL.AUG.ULTRASOUND`` (their ranges and probabilities; depth crop
  excluded, it would change the size) when ``ULTRASOUND`` and they are not on already, and a rotation of at most
  ``+-ROTATION`` degrees on the same canvas (Detectron2's RandomRotation).

The mapped dict of a weak image holds ``image`` (the student's view, ``(C, H, W)`` uint8), ``teacher_image`` (the
teacher's view, same shape) and ``student_transforms`` (the TransformList from the teacher's view to the student's:
``apply_box`` maps the teacher's boxes onto the student's view). Strong images are mapped as without a teacher.
"""
import copy
import logging
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T

from ..data.mapper import RandomBrightnessShift, WSSDLDatasetMapper, build_stream_augmentations
from ..data.ultrasound_augmentation import (RandomBlur, RandomDepthGain, RandomGain, RandomGamma, RandomResolution,
                                            RandomSpeckle, build_ultrasound_augmentations)

logger = logging.getLogger(__name__)

__all__ = ["INTENSITY_AUGMENTATIONS", "split_weak_augmentations", "TeacherStudentMapper"]

#: Augmentations that change intensities only (no coordinate changes, same image size).
INTENSITY_AUGMENTATIONS = (RandomBrightnessShift, T.RandomContrast, T.RandomBrightness, T.RandomSaturation,
                           T.RandomLighting, RandomGain, RandomDepthGain, RandomSpeckle, RandomBlur, RandomResolution,
                           RandomGamma)


def split_weak_augmentations(cfg) -> Tuple[List[T.Augmentation], List[T.Augmentation]]:
    """(the teacher's view augmentations, the student's extra augmentations applied on the teacher's view)."""
    stream = build_stream_augmentations(cfg, weak=True)
    teacher = [a for a in stream if not isinstance(a, INTENSITY_AUGMENTATIONS)]
    student = [a for a in stream if isinstance(a, INTENSITY_AUGMENTATIONS)]
    strong = cfg.WSSDL.TEACHER.STRONG_AUG
    if strong.ULTRASOUND and not cfg.WSSDL.AUG.ULTRASOUND.ENABLED:
        us = cfg.clone()
        us.defrost()
        us.WSSDL.AUG.ULTRASOUND.ENABLED = True
        student = [a for a in build_ultrasound_augmentations(us) if isinstance(a, INTENSITY_AUGMENTATIONS)] + student
    angle = float(strong.ROTATION)
    if angle < 0:
        raise ValueError(f"WSSDL.TEACHER.STRONG_AUG.ROTATION must be >= 0 degrees, not {angle}")
    if angle > 0:
        student.append(T.RandomRotation([-angle, angle], expand=False, sample_style="range"))
    return teacher, student


class TeacherStudentMapper:
    """The training mapper of a run with a teacher: :class:`~wssdl_d2.data.WSSDLDatasetMapper` for strong (and
    pseudo) images, the two views of the module docstring for weak images."""

    def __init__(self, cfg, is_train: bool = True):
        self.mapper = WSSDLDatasetMapper(cfg, is_train)
        teacher, self.student_augmentations = split_weak_augmentations(cfg)
        base = DatasetMapper.from_config(cfg, True)
        self.teacher_mapper = DatasetMapper(**{**base, "augmentations": teacher})
        self.student = T.AugmentationList(self.student_augmentations)
        logger.info("Weak images: teacher's view %s; student's view adds %s", teacher, self.student_augmentations)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        if dataset_dict.get("supervision") != "weak":
            return self.mapper(dataset_dict)
        out = self.teacher_mapper({**copy.deepcopy(dataset_dict), "annotations": []})
        teacher_image = out["image"]
        view = T.AugInput(np.ascontiguousarray(teacher_image.permute(1, 2, 0).numpy()))
        transforms = self.student(view)
        if view.image.shape[:2] != tuple(teacher_image.shape[1:]):
            raise RuntimeError("the student's augmentations changed the image size; they must keep the canvas")
        out["image"] = torch.as_tensor(np.ascontiguousarray(view.image.transpose(2, 0, 1)))
        out["teacher_image"] = teacher_image
        out["student_transforms"] = transforms
        out["supervision"] = "weak"
        out["image_label"] = dataset_dict.get("image_label")
        return out
