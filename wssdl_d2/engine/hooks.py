"""Training hooks of the joint method."""
import torch
from detectron2.engine import HookBase
from torch.nn.parallel import DistributedDataParallel

from ..modeling.alpha import alpha_at


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class MILAlphaHook(HookBase):
    """Before every iteration, sets ``roi_heads.mil_alpha = alpha_at(iteration, cfg)`` and logs it to the
    EventStorage as ``wssdl/alpha``. Resuming restores the iteration, hence alpha."""

    def __init__(self, cfg, roi_heads):
        self._cfg = cfg
        self._roi_heads = roi_heads

    def before_step(self) -> None:
        alpha = alpha_at(self.trainer.iter, self._cfg)
        self._roi_heads.mil_alpha = alpha
        self.trainer.storage.put_scalar("wssdl/alpha", alpha, smoothing_hint=False)
