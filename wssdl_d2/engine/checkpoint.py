"""A DetectionCheckpointer whose files are written atomically.

A process killed while saving leaves the previous checkpoint and ``last_checkpoint`` intact: the new file is
written to a temporary sibling, flushed, and renamed over the target only when complete. A save that fails because
the disk is full raises :class:`~wssdl_d2.model_zoo.safe_load.CheckpointError` naming the folder and its free space.
"""
import errno
import glob
import os
import shutil

import torch

from ..model_zoo.safe_load import CheckpointError, SafeDetectionCheckpointer
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
        try:
            with atomic_open(path, "wb") as f:
                torch.save(data, f)
        except (OSError, RuntimeError) as error:
            raise_if_disk_full(error, path)
            raise
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename):
        path = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with atomic_open(path, "w") as f:
                f.write(last_filename_basename)
        except OSError as error:
            raise_if_disk_full(error, path)
            raise


def _free_space(folder: str) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} GB"  # not reached


def raise_if_disk_full(error: BaseException, path: str) -> None:
    """Raise :class:`CheckpointError` naming the folder of ``path`` and its free space when ``error`` (from writing
    ``path``) says the disk is full (``ENOSPC`` / ``EDQUOT``, or torch's zip writer failing to write); else return.
    The earlier checkpoints and ``last_checkpoint`` are intact (the write was atomic)."""
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, RuntimeError):  # torch.save's zip writer reports a failed write as a RuntimeError
        text = str(error).lower()
        full = "write" in text and ("fail" in text or "space" in text)
    if not full:
        return
    folder = os.path.dirname(os.path.abspath(path))
    raise CheckpointError(
        f"cannot save {os.path.basename(path)} in {folder}: the disk is full ({_free_space(folder)} free there). "
        "The earlier checkpoints and last_checkpoint are intact: free some space (or set OUTPUT_DIR on another disk) "
        "and continue with --resume") from None
