"""The training step of a run with the label-aware mean teacher (``WSSDL.TEACHER.ENABLED``).

Detectron2's SimpleTrainer step (one forward / backward / optimizer step on a combined strong + weak batch) with the
teacher around it: before the forward pass the weak images get their pseudo boxes (or, during the burn-in, are
marked without), after the optimizer step the teacher takes its EMA step. See :mod:`wssdl_d2.teacher`.
"""
import time

from detectron2.engine import SimpleTrainer
from detectron2.utils.events import get_event_storage

from ..teacher import MeanTeacher
from .hooks import unwrap_model


class TeacherStudentTrainer(SimpleTrainer):
    """SimpleTrainer whose step lets ``teacher`` (a :class:`~wssdl_d2.teacher.MeanTeacher`) label the weak images of
    each batch from iteration ``teacher.burn_in`` on, and update the teacher after every optimizer step from
    then on. The teacher's statistics go to the EventStorage as ``teacher/*``."""

    def __init__(self, model, data_loader, optimizer, teacher: MeanTeacher, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.teacher = teacher

    def run_step(self) -> None:
        assert self.model.training, "[TeacherStudentTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        student = unwrap_model(self.model)
        active = self.teacher.is_active(self.iter)
        if active:
            self.teacher.start(student)
            stats = self.teacher.label(data)
            if stats:
                get_event_storage().put_scalars(**{f"teacher/{k}": v for k, v in stats.items()})
        else:
            self.teacher.mark_untrusted(data)
        loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()
        if active:
            self.teacher.update(student)
