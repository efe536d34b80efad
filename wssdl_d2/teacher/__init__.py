"""The label-aware mean teacher (``WSSDL.TEACHER``): an EMA teacher whose pseudo boxes on weak images obey the
image labels, with per-class adaptive bars, trained on a strongly augmented student view (docs/TRAINING.md)."""
from .ema import build_ema, ema_multi_avg_fn
from .mean_teacher import EVAL_WITH, MeanTeacher, check_teacher_config
from .pseudo_labels import PseudoTarget, image_diagnosis, label_aware_target, label_free_target
from .thresholds import ClassThresholds
from .views import TeacherStudentMapper, split_weak_augmentations

__all__ = ["build_ema", "ema_multi_avg_fn", "EVAL_WITH", "MeanTeacher", "check_teacher_config", "PseudoTarget",
           "image_diagnosis", "label_aware_target", "label_free_target", "ClassThresholds", "TeacherStudentMapper",
           "split_weak_augmentations"]
