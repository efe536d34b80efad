"""A DetectionCheckpointer whose files are written atomically.

A process killed while saving leaves the previous checkpoint and ``last_checkpoint`` intact: the new file is
written to a temporary sibling, flushed, and renamed over the target only when complete.
"""
import glob
import os

import torch

from ..model_zoo.safe_load import SafeDetectionCheckpointer
from ..utils.atomic import atomic_open


class AtomicDetectionCheckpointer(SafeDetectionCheckpointer):
    """SafeDetectionCheckpointer (weights-only loading unless ``allow_pickle``) with atomic ``save`` and
    ``tag_last_checkpoint``. On creation it removes the
    temporary files a run killed during a save left behind (``.<checkpoint>.pth.<random>.tmp``)."""

    def __init__(self, model, save_dir="", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        if self.save_to_disk and save_dir and os.path.isdir(save_dir):
            for stale in glob.glob(os.path.join(save_dir, ".*.pth.*.tmp")) + glob.glob(
                    os.path.join(save_dir, ".last_checkpoint.*.tmp")):
                self.logger.info(f"Removing {stale}, left by a run killed while saving")
                os.remove(stale)

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        with atomic_open(path, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename):
        with atomic_open(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)
