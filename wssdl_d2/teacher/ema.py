"""The teacher's weights: an exponential moving average (EMA) of the student's, with torch's AveragedModel.

``teacher <- decay * teacher + (1 - decay) * student`` for every floating-point parameter *and buffer*
(``use_buffers=True``): BatchNorm running means / variances are averaged like the weights, so the teacher's
normalisation matches its weights; FrozenBatchNorm buffers are constants and stay equal. Integer buffers
(BatchNorm's ``num_batches_tracked``) are copied from the student, not averaged. The first update copies the student
(AveragedModel's ``n_averaged == 0``): the teacher starts as the student at the end of the burn-in.
"""
from typing import Callable, Sequence

import torch
from torch.optim.swa_utils import AveragedModel

__all__ = ["ema_multi_avg_fn", "build_ema"]


def ema_multi_avg_fn(decay: float) -> Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor], torch.Tensor], None]:
    """An AveragedModel ``multi_avg_fn``: in place, ``averaged = decay * averaged + (1 - decay) * current`` for
    floating-point tensors (one ``torch._foreach_lerp_``), ``averaged = current`` for the others. ``decay`` in
    [0, 1]; 0 copies, 1 freezes."""
    decay = float(decay)
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"WSSDL.TEACHER.EMA_DECAY must be in [0, 1], not {decay}")

    @torch.no_grad()
    def update(averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor], _n_averaged) -> None:
        # AveragedModel groups the tensors by device and dtype: a group is all floating or all integer
        if averaged and torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(list(averaged), list(current), 1.0 - decay)
        else:
            for a, c in zip(averaged, current):
                a.copy_(c)

    return update


def build_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An AveragedModel holding a deep copy of ``model`` (same device), in eval mode and without gradients,
    averaged with :func:`ema_multi_avg_fn` over parameters and buffers. Call ``update_parameters(model)`` after an
    optimizer step; ``.module`` is the teacher."""
    ema = AveragedModel(model, multi_avg_fn=ema_multi_avg_fn(decay), use_buffers=True)
    ema.module.eval()
    ema.requires_grad_(False)
    return ema
