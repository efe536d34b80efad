"""The label-aware mean teacher: an EMA copy of the student that pseudo-labels the weak images of each batch.

Per training iteration t (:class:`~wssdl_d2.engine.teacher_trainer.TeacherStudentTrainer`):

1. t < ``BURN_IN``: the joint loss only (strong losses + MIL); weak images are marked ``pseudo_target: False``.
2. t >= ``BURN_IN``: the teacher (:mod:`.ema`; at t = BURN_IN a copy of the student) predicts on the teacher's view
   of every weak image (:mod:`.views`), in eval mode and without gradients; the detections become pseudo boxes by
   the image label and the per-class bars (:mod:`.pseudo_labels`, :mod:`.thresholds`), are mapped onto the student's
   view and stored as the image's ``instances`` with ``pseudo_target`` (trusted or not).
3. The student trains on the batch (strong losses, MIL, and the pseudo losses of the trusted weak images), then
   the teacher takes the EMA step.

Logged into Detectron2's EventStorage (and metrics.json) per iteration after the burn-in, over the batch's weak
images: ``teacher/pseudo_boxes_per_image``, ``teacher/pseudo_boxes_benign`` and ``_malignant`` (per weak image),
``teacher/off_label_boxes`` (pseudo boxes whose class is not the image label's, any box on a normal image; 0 with
the label filter), ``teacher/trusted_images`` (share), ``teacher/kept_best`` (share of weak mass images whose one
box comes from the at-least-one rule), ``teacher/label_agreement`` (share whose teacher diagnosis: the class of the
best detection above its bar, else normal, is the image label) and ``teacher/label_agreement_<label>``, the bars
``teacher/threshold_<class>`` and learning effects ``teacher/learning_rate_<class>``, ``teacher/time`` (seconds).

:meth:`MeanTeacher.state_dict` (the teacher's weights, the EMA count and the thresholds' window; tensors only) is
saved in every checkpoint as ``"teacher"`` and restored by ``--resume``.
"""
import time
from typing import Any, Dict, List

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from ..data.labels import IMAGE_LABEL_NAMES, NORMAL, THING_CLASSES, image_label_to_class
from .ema import build_ema
from .pseudo_labels import image_diagnosis, label_aware_target, label_free_target
from .thresholds import ClassThresholds

EVAL_WITH = ("teacher", "student")

__all__ = ["EVAL_WITH", "MeanTeacher", "check_teacher_config"]


def check_teacher_config(cfg) -> None:
    """ValueError naming the key of an inconsistent ``WSSDL.TEACHER`` setting."""
    t = cfg.WSSDL.TEACHER
    if t.EVAL_WITH not in EVAL_WITH:
        raise ValueError(f"WSSDL.TEACHER.EVAL_WITH must be one of {EVAL_WITH}, not {t.EVAL_WITH!r}")
    if int(t.BURN_IN) < 0:
        raise ValueError(f"WSSDL.TEACHER.BURN_IN must be >= 0, not {t.BURN_IN}")
    if float(t.LOSS_WEIGHT) < 0:
        raise ValueError(f"WSSDL.TEACHER.LOSS_WEIGHT must be >= 0, not {t.LOSS_WEIGHT}")
    if not t.LABEL_FILTER and t.THRESHOLD == "adaptive":
        raise ValueError("WSSDL.TEACHER.THRESHOLD adaptive measures how well each class is learnt with the image "
                         "labels; without LABEL_FILTER (no image label used) set THRESHOLD fixed")
    if cfg.MODEL.META_ARCHITECTURE != "WSSDLRCNN":
        raise ValueError(f"WSSDL.TEACHER.ENABLED needs MODEL.META_ARCHITECTURE WSSDLRCNN (configs/*/wssdl.yaml), "
                         f"not {cfg.MODEL.META_ARCHITECTURE}")
    if cfg.WSSDL.BATCH_MODE != "combined":
        raise ValueError("WSSDL.TEACHER.ENABLED needs WSSDL.BATCH_MODE combined")
    if cfg.SOLVER.AMP.ENABLED:
        raise ValueError("WSSDL.TEACHER.ENABLED does not support SOLVER.AMP.ENABLED")


class MeanTeacher:
    """The teacher of one training run (see the module docstring).

    Args:
        cfg: the run's config (``WSSDL.TEACHER``).
        student: the student model, not wrapped in DistributedDataParallel (the teacher is a deep copy of it, on
            its device).
    """

    def __init__(self, cfg, student: torch.nn.Module):
        check_teacher_config(cfg)
        t = cfg.WSSDL.TEACHER
        self.burn_in = int(t.BURN_IN)
        self.label_filter = bool(t.LABEL_FILTER)
        self.keep_best = bool(t.KEEP_BEST)
        self.eval_with = t.EVAL_WITH
        self.ema = build_ema(student, float(t.EMA_DECAY))
        self.thresholds = ClassThresholds.from_config(cfg)

    @property
    def model(self) -> torch.nn.Module:
        """The teacher model (eval mode)."""
        return self.ema.module

    @property
    def started(self) -> bool:
        """Whether the teacher has been initialised from the student (the burn-in is over)."""
        return int(self.ema.n_averaged) > 0

    def is_active(self, iteration: int) -> bool:
        return iteration >= self.burn_in

    def start(self, student: torch.nn.Module) -> None:
        """Copy the student into the teacher if that has not happened yet (the first iteration after burn-in)."""
        if not self.started:
            self.ema.update_parameters(student)

    def update(self, student: torch.nn.Module) -> None:
        """The EMA step, after the student's optimizer step."""
        self.ema.update_parameters(student)

    @staticmethod
    def mark_untrusted(batch: List[Dict[str, Any]]) -> None:
        """Burn-in: every weak image has no pseudo target (its ``instances`` stay empty)."""
        for x in batch:
            if x.get("supervision") == "weak":
                x["pseudo_target"] = False

    @torch.no_grad()
    def label(self, batch: List[Dict[str, Any]]) -> Dict[str, float]:
        """Give the weak images of ``batch`` (mapped by :class:`~.views.TeacherStudentMapper`) their pseudo boxes,
        in place: ``instances`` (``gt_boxes``, ``gt_classes`` on the student's view) and ``pseudo_target``.
        Returns the batch's statistics (the ``teacher/*`` scalars of the module docstring, without the prefix)."""
        start = time.perf_counter()
        weak = [x for x in batch if x.get("supervision") == "weak"]
        if not weak:
            return {}
        missing = [x.get("file_name", "?") for x in weak if "teacher_image" not in x]
        if missing:
            raise ValueError(f"MeanTeacher: weak images without a teacher view (map them with "
                             f"wssdl_d2.teacher.TeacherStudentMapper): {missing[:3]}")
        bars = self.thresholds.thresholds()
        detections = self.model.inference([{"image": x["teacher_image"]} for x in weak], do_postprocess=False)
        stats = {"boxes": 0, "off_label": 0, "trusted": 0, "kept_best": 0, "mass": 0, "agree": 0}
        per_class = np.zeros(len(THING_CLASSES))
        agree_by_label = {y: [] for y in range(len(IMAGE_LABEL_NAMES))}
        for x, det in zip(weak, detections):
            label = int(x["image_label"])
            boxes, scores, classes = det.pred_boxes.tensor, det.scores, det.pred_classes
            top = int(scores.argmax()) if len(scores) else None
            self.thresholds.observe(label, None if top is None else int(classes[top]),
                                    None if top is None else float(scores[top]))
            if self.label_filter:
                target = label_aware_target(boxes, scores, classes, label, bars, self.keep_best)
            else:
                target = label_free_target(boxes, scores, classes, bars)
            instances = self._student_instances(x, target.boxes, target.classes)
            trusted = target.trusted and (len(instances) > 0 or label == NORMAL or not self.label_filter)
            x["instances"], x["pseudo_target"] = instances, trusted
            agreed = image_diagnosis(scores, classes, bars) == label
            agree_by_label[label].append(agreed)
            stats["agree"] += agreed
            stats["trusted"] += trusted
            if trusted:
                kept = instances.gt_classes.tolist()
                stats["boxes"] += len(kept)
                per_class += np.bincount(kept, minlength=len(THING_CLASSES))
                stats["off_label"] += sum(label == NORMAL or c != image_label_to_class(label) for c in kept)
            if label != NORMAL:
                stats["mass"] += 1
                stats["kept_best"] += target.kept_best
        n = len(weak)
        out = {"pseudo_boxes_per_image": stats["boxes"] / n, "off_label_boxes": stats["off_label"] / n,
               "trusted_images": stats["trusted"] / n, "label_agreement": stats["agree"] / n}
        out.update({f"pseudo_boxes_{name}": per_class[c] / n for c, name in enumerate(THING_CLASSES)})
        if stats["mass"]:
            out["kept_best"] = stats["kept_best"] / stats["mass"]
        out.update({f"label_agreement_{IMAGE_LABEL_NAMES[y]}": float(np.mean(v))
                    for y, v in agree_by_label.items() if v})
        out.update({f"threshold_{name}": float(bars[c]) for c, name in enumerate(THING_CLASSES)})
        out.update({f"learning_rate_{name}": float(r) for name, r in zip(THING_CLASSES, self.thresholds.rates())})
        out["time"] = time.perf_counter() - start
        return out

    @staticmethod
    def _student_instances(x: Dict[str, Any], boxes: torch.Tensor, classes: torch.Tensor) -> Instances:
        """The teacher's boxes (teacher's view) as ``gt_boxes`` / ``gt_classes`` on the student's view: mapped by
        ``student_transforms``, clipped, empty boxes dropped. CPU tensors."""
        height, width = x["image"].shape[-2:]
        boxes = boxes.detach().cpu().numpy()
        if len(boxes) and "student_transforms" in x:
            boxes = x["student_transforms"].apply_box(boxes)
        gt = Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
        gt.clip((height, width))
        keep = gt.nonempty()
        instances = Instances((height, width))
        instances.gt_boxes = gt[keep]
        instances.gt_classes = classes.detach().cpu().long()[keep]
        return instances

    def state_dict(self) -> Dict[str, Any]:
        """``{"model": the teacher's state dict, "n_averaged": EMA count, "thresholds": the window}``."""
        return {"model": self.model.state_dict(), "n_averaged": self.ema.n_averaged.detach().clone(),
                "thresholds": self.thresholds.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        missing = [k for k in ("model", "n_averaged", "thresholds") if k not in state]
        if missing:
            raise KeyError(f"the checkpoint's teacher entry has no {missing}")
        self.model.load_state_dict(state["model"])
        self.ema.n_averaged.copy_(state["n_averaged"])
        self.thresholds.load_state_dict(state["thresholds"])
