"""Loading checkpoints without running code from them: the project's one checkpoint loader.

Every path that reads a checkpoint into a model goes through :func:`load_model_weights` (or
:func:`build_trained_model`, which builds the model first): ``tools/train_net.py`` (``MODEL.WEIGHTS``, ``--resume``,
``--eval-only``), the predictor behind demo / saliency / suggest_annotations / self-training / the simulated
annotator, export, the benchmark, the model zoo and checkpoint evaluation. ``WSSDL.ALLOW_PICKLE_WEIGHTS True`` is
the one opt-in to pickle files.

A zoo checkpoint is a weights-only ``.pth`` (read with ``torch.load(..., weights_only=True)``) or a
``.safetensors`` file (the ``safetensors`` package; float16 tensors in it are read back as float32). A Python pickle can execute arbitrary code while it is
read, so a Detectron2 ``.pkl`` (or pycls ``.pyth``) from elsewhere is only read with an explicit
``allow_pickle=True``, and a ``.pth`` that holds Python objects besides tensors is refused with
:class:`UnsafeCheckpointError`.
"""
import os
import pickle
import re
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..errors import UserError

PICKLE_SUFFIXES = (".pkl", ".pyth")


class UnsafeCheckpointError(UserError, ValueError, RuntimeError):
    """A checkpoint that could run code when loaded, refused (a bad input: tools report it like other bad files)."""


class UnreadableCheckpointError(UnsafeCheckpointError):
    """A checkpoint file that is not a readable checkpoint (truncated, empty, another format); nothing in it ran."""


class CheckpointError(UserError, RuntimeError):
    """A run's checkpoints cannot be used or written: ``last_checkpoint`` names a file that is not there, or a save
    failed (a full disk). The message names the folder or file and what to do."""


def check_pickle_allowed(path: Union[str, os.PathLike], allow_pickle: bool) -> None:
    """Raise UnsafeCheckpointError for a pickle file (``.pkl`` / ``.pyth``) unless ``allow_pickle``."""
    if str(path).endswith(PICKLE_SUFFIXES) and not allow_pickle:
        raise UnsafeCheckpointError(
            f"{path}: refusing to read a Python pickle ({str(path).rsplit('.', 1)[-1]}), which can run code when "
            f"loaded. Checkpoints of this project are weights-only .pth / .safetensors files. If you trust where this "
            f"file comes from, opt in with the config option WSSDL.ALLOW_PICKLE_WEIGHTS True (Python: "
            f"allow_pickle=True)")


def load_checkpoint(path: Union[str, os.PathLike], allow_pickle: bool = False) -> Dict[str, Any]:
    """Read a checkpoint file as a dict holding at least ``"model"`` (name -> tensor).

    Args:
        path (str): a local ``.pth`` / ``.pt`` / ``.safetensors`` file (``.pkl`` / ``.pyth`` with ``allow_pickle``).
        allow_pickle (bool): read pickle files with Detectron2's unrestricted loader; only for trusted files.
    Raises:
        UnsafeCheckpointError: a pickle without ``allow_pickle``, a ``.pth`` with non-tensor Python objects, or a
            file that is not a readable checkpoint (truncated, empty, another format), naming ``path``.
    """
    path = str(path)
    if path.endswith(PICKLE_SUFFIXES):
        check_pickle_allowed(path, allow_pickle)
        return DetectionCheckpointer(torch.nn.Module())._load_file(path)  # Detectron2's .pkl / .pyth reader
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise ImportError(f"{path}: reading .safetensors files needs `pip install safetensors`") from error
        try:
            weights = load_file(path, device="cpu")
        except Exception as error:  # safetensors raises its own SafetensorError (and OSError) for a bad file
            raise UnsafeCheckpointError(f"{path}: not a readable .safetensors file ({error}); nothing in it was "
                                        "run") from None
        # weights stored in float16 (a shipped model, :mod:`wssdl_d2.release.ship`) are used in float32, as trained
        return {"model": {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
                          for k, v in weights.items()}}
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = re.search(r"Unsupported (global|operand)[^.]*", str(error))
        reason = reason.group(0) if reason else type(error).__name__
        raise UnsafeCheckpointError(
            f"{path}: refused: the file holds Python objects besides tensors, and unpickling them could run code "
            f"({reason}). Publish checkpoints with tools/publish_model.py, which writes weights only") from None
    except OSError:
        raise  # not there / not readable: the OS's message names the file
    except Exception as error:  # truncated, empty or foreign: torch's readers raise many kinds, none naming the file
        raise UnreadableCheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: "
                                        f"{str(error)[:200]}); nothing in it was run") from None
    if not isinstance(data, dict):
        raise UnsafeCheckpointError(f"{path}: expected a dict of weights, found {type(data).__name__}")
    return data if "model" in data else {"model": data}


def model_weights(checkpoint: Mapping[str, Any], path: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The ``"model"`` state dict of a loaded checkpoint as CPU tensors (numpy arrays converted); ValueError
    naming ``path`` for anything that is not an array."""
    weights = checkpoint.get("model")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{path}: no 'model' state dict in the checkpoint (keys: {sorted(checkpoint)[:10]})")
    out = {}
    for name, value in weights.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: model entry {name!r} is a {type(value).__name__}, not a tensor")
        out[name] = value.detach().cpu()
    return out


class SafeDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose file reading goes through :func:`load_checkpoint` (weights only unless
    ``allow_pickle``); everything else (matching heuristics, ``wssdl_d2://`` / URL paths) is Detectron2's."""

    def __init__(self, model, save_dir="", *, allow_pickle=False, teacher=False, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.allow_pickle = allow_pickle
        self.teacher = teacher  # load a mean-teacher run's teacher weights as the model (see teacher_as_model)
        self.incompatible = None  # the last load's missing / unexpected / wrongly shaped keys (Detectron2's record)

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible

    def _load_file(self, filename):
        check_pickle_allowed(filename, self.allow_pickle)
        if filename.endswith(".safetensors"):
            data = load_checkpoint(filename)
        else:
            data = super()._load_file(filename)
        return teacher_as_model(data, filename, self.logger) if self.teacher else data

    def _torch_load(self, f):
        return load_checkpoint(f)

    def resume_or_load(self, path, *, resume=True):
        """Detectron2's ``resume_or_load``, with clear errors when resuming: a ``last_checkpoint`` that names no
        file raises :class:`CheckpointError`, an unreadable last checkpoint (a truncated file) raises
        :class:`UnreadableCheckpointError`; both name the newest readable earlier checkpoint of the folder and say
        how to continue from it."""
        if not (resume and self.has_checkpoint()):
            return super().resume_or_load(path, resume=resume)
        last = self.get_checkpoint_file()
        tag = os.path.join(self.save_dir, "last_checkpoint")
        if not os.path.isfile(last):
            named = os.path.basename(last)
            what = f"names {named}, which is not in {self.save_dir}" if named else "is empty"
            raise CheckpointError(f"{tag} {what}. {resume_hint(self.save_dir, last)}")
        try:
            return self.load(last)
        except UnreadableCheckpointError as error:
            raise UnreadableCheckpointError(f"{error}. {resume_hint(self.save_dir, last)}") from None


def previous_checkpoint(folder: str, broken: str = "") -> Optional[str]:
    """The newest checkpoint (``*.pth``, by modification time) in ``folder`` other than ``broken`` that reads back as
    a checkpoint, or None."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".pth") and not n.startswith(".")]
    except OSError:
        return None
    paths = [os.path.join(folder, n) for n in names]
    paths = [p for p in paths if os.path.isfile(p) and os.path.abspath(p) != os.path.abspath(broken or "")]
    for candidate in sorted(paths, key=os.path.getmtime, reverse=True):
        try:
            load_checkpoint(candidate)
        except (UnsafeCheckpointError, OSError):
            continue
        return candidate
    return None


def resume_hint(folder: str, broken: str = "") -> str:
    """What to do when the last checkpoint of ``folder`` cannot be resumed from: the previous readable checkpoint
    (named) and how to continue from it, or to start again."""
    previous = previous_checkpoint(folder, broken)
    tag = os.path.join(folder, "last_checkpoint")
    if previous is None:
        return (f"No earlier readable checkpoint in {folder}: start the run again without --resume (or in another "
                "OUTPUT_DIR)")
    name = os.path.basename(previous)
    return (f"The previous checkpoint {previous} reads back: to continue from it, run `echo {name} > {tag}` and "
            "start again with --resume")


def teacher_as_model(checkpoint: Dict[str, Any], path: str = "checkpoint", logger=None) -> Dict[str, Any]:
    """A checkpoint of a mean-teacher run (``WSSDL.TEACHER``) with the teacher's weights as its ``"model"``. A
    checkpoint written before the teacher started (EMA count 0: the burn-in) keeps the student's weights (logged);
    ValueError naming ``path`` for a checkpoint without a teacher."""
    teacher = checkpoint.get("teacher")
    if not isinstance(teacher, dict) or "model" not in teacher:
        raise ValueError(f"{path}: no teacher weights in this checkpoint (WSSDL.TEACHER.EVAL_WITH teacher needs a "
                         "checkpoint of a run with WSSDL.TEACHER.ENABLED; set WSSDL.TEACHER.EVAL_WITH student)")
    if int(teacher.get("n_averaged", 1)) == 0:
        if logger is not None:
            logger.info(f"{path}: written during the teacher's burn-in; using the student's weights")
        return checkpoint
    return {**checkpoint, "model": teacher["model"]}


def load_model_weights(model: torch.nn.Module, weights: str, *, allow_pickle: bool = False, save_dir: str = "",
                       resume: bool = False, teacher: bool = False, require_complete: bool = False) -> Dict[str, Any]:
    """Load ``weights`` into ``model`` weights-only: the project's one way to read a checkpoint into a model.

    Args:
        model: the built model (its state dict is filled in place; Detectron2's name-matching heuristics apply
            to Caffe2 / Detectron2 pickles).
        weights: a file path, URL or ``wssdl_d2://`` name (anything Detectron2's PathManager resolves); empty loads
            nothing.
        allow_pickle: read ``.pkl`` / ``.pyth`` pickles too (``WSSDL.ALLOW_PICKLE_WEIGHTS``); only trusted files.
        save_dir: with ``resume``, the folder whose ``last_checkpoint`` names the file to continue from.
        resume: load ``save_dir``'s last checkpoint when there is one, else ``weights``.
        teacher: load a mean-teacher checkpoint's teacher weights (:func:`teacher_as_model`), not the student's.
        require_complete: every parameter of ``model`` must come from the checkpoint, with its shape (a trained
            model of this config, as ``--eval-only`` needs: not a backbone's ImageNet weights, not nothing).
    Returns:
        the checkpoint's other entries (``iteration``, optimizer state, ...), as Detectron2's checkpointer does.
    Raises:
        UnsafeCheckpointError: a pickle without ``allow_pickle``, or a file holding Python objects besides tensors.
        FileNotFoundError: ``weights`` is a local path that does not exist (and no last checkpoint is resumed).
        CheckpointError: with ``require_complete``, no checkpoint, or one without some of the model's parameters.
    """
    checkpointer = SafeDetectionCheckpointer(model, save_dir, allow_pickle=allow_pickle, teacher=teacher)
    resuming = resume and checkpointer.has_checkpoint()
    if weights and not resuming and "://" not in weights and not os.path.isfile(weights):
        raise FileNotFoundError(f"MODEL.WEIGHTS {weights}: checkpoint file not found")
    if require_complete and not weights and not resuming:
        raise CheckpointError("no weights to load (MODEL.WEIGHTS is empty): give MODEL.WEIGHTS "
                              "path/to/model_final.pth")
    extras = checkpointer.resume_or_load(weights, resume=resume)
    if require_complete:
        source = checkpointer.get_checkpoint_file() if resuming else weights
        check_complete(model, checkpointer.incompatible, source)
    return extras


def check_complete(model: torch.nn.Module, incompatible, source: str) -> None:
    """Raise :class:`CheckpointError` naming ``source`` when ``incompatible`` (Detectron2's record of a load) says
    some of ``model``'s parameters were not loaded (missing from the checkpoint, or of another shape)."""
    params = {name for name, _ in model.named_parameters()}
    loaded_none = incompatible is None
    missing = sorted(params if loaded_none else params & set(getattr(incompatible, "missing_keys", None) or []))
    if missing:
        raise CheckpointError(
            f"MODEL.WEIGHTS {source}: not a trained model of this config: {len(missing)} of the model's "
            f"{len(params)} parameters are not in it (e.g. {missing[0]}), so they would be random")


def build_trained_model(cfg, weights: Optional[str] = None) -> torch.nn.Module:
    """Detectron2's ``build_model(cfg)`` in eval mode with ``weights`` (default ``cfg.MODEL.WEIGHTS``) loaded by
    :func:`load_model_weights`, pickles allowed only with ``cfg.WSSDL.ALLOW_PICKLE_WEIGHTS``; a mean-teacher run's
    teacher weights when :func:`evaluates_teacher`."""
    from detectron2.modeling import build_model

    model = build_model(cfg)
    load_model_weights(model, cfg.MODEL.WEIGHTS if weights is None else weights,
                       allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS, teacher=evaluates_teacher(cfg))
    return model.eval()


def evaluates_teacher(cfg) -> bool:
    """Whether a run's checkpoints are evaluated with the teacher's weights: ``WSSDL.TEACHER.ENABLED`` and
    ``WSSDL.TEACHER.EVAL_WITH`` teacher."""
    teacher = cfg.WSSDL.get("TEACHER")
    return bool(teacher is not None and teacher.ENABLED and teacher.EVAL_WITH == "teacher")
