"""Models shipped inside the package: their files, verified by sha256, used offline.

A shipped entry of the checkpoint index (:mod:`.index`) names its files relative to the index file's folder
(``wssdl_d2/model_zoo/`` for the packaged ``checkpoints.json``)::

    trained/BUSI/wssdl/model_<sha8>.safetensors   weights only (safetensors: tensors and a text header, no code)
    trained/BUSI/wssdl/config.yaml                the full config the model was trained with (YAML, no _BASE_)
    trained/BUSI/wssdl/calibration.json           the calibration of its malignancy score (optional, parameters)

:func:`entry_weights_path` gives the weights of any index entry (the shipped file, else a verified download),
:func:`shipped_config_path` / :func:`calibration_path` the other two. :func:`default_model_config` is what the
tools run when they are given neither a config nor weights: the shipped :data:`DEFAULT_MODEL`.
"""
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

from detectron2.config import CfgNode

from .download import ChecksumError, cached_download, file_sha256
from .index import INDEX_DIR_KEY, PACKAGED_INDEX, CheckpointNotPublished, checkpoint_entry, index_paths

#: The model the tools use when given no config and no weights.
DEFAULT_MODEL = "BUSI/wssdl.yaml"
#: Folder (under an index file's folder) of the shipped models' files.
TRAINED_DIR = "trained"

HOW_TO_GET = ("train one (python tools/train_net.py --config-file configs/BUSI/wssdl.yaml) and pass --config-file "
              "and MODEL.WEIGHTS, or install a wssdl_d2 release that ships it (MODEL_ZOO.md, 'Shipped models'), or "
              "name your lab's index in $WSSDL_MODEL_INDEX")


class ShippedFileMissing(CheckpointNotPublished, FileNotFoundError):
    """An index entry names a shipped file that is not in this installation (and has no URL to fetch it from)."""


def packaged_path(entry: Mapping[str, Any], relative: str) -> str:
    """Absolute path of ``relative`` (a shipped file of ``entry``) in the folder of the index that named it."""
    return os.path.join(entry.get(INDEX_DIR_KEY) or os.path.dirname(PACKAGED_INDEX), relative)


def verified(path: str, sha256: str, what: str) -> str:
    """``path`` after checking that its sha256 is ``sha256``; ChecksumError naming the file otherwise."""
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ChecksumError(f"{path}: the {what} has sha256 {actual}, but the checkpoint index expects {sha256}: "
                            "the file was changed or damaged. Reinstall wssdl_d2 (or ship the model again)")
    return path


def entry_weights_path(entry: Mapping[str, Any], cache_dir: Optional[str] = None) -> str:
    """Local weights file of an index entry: the shipped file (``packaged``, sha256-verified, no network), else
    the entry's URL downloaded once into the cache (:func:`.download.cached_download`).

    Raises ChecksumError (a changed file), ShippedFileMissing (a shipped file absent and no URL)."""
    if entry.get("packaged"):
        path = packaged_path(entry, entry["packaged"])
        if os.path.isfile(path):
            return verified(path, entry["sha256"], "shipped weights file")
        if not entry.get("url"):
            raise ShippedFileMissing(f"{path}: the shipped weights file named by the checkpoint index is missing "
                                     f"from this installation; {HOW_TO_GET}")
    return cached_download(entry["url"], entry["sha256"], entry.get("file") or entry["packaged"], cache_dir=cache_dir)


def _extra_path(entry: Mapping[str, Any], key: str, what: str) -> Optional[str]:
    extra = entry.get(key)
    if not extra:
        return None
    path = packaged_path(entry, extra["path"])
    if not os.path.isfile(path):
        raise ShippedFileMissing(f"{path}: the {what} named by the checkpoint index is missing; {HOW_TO_GET}")
    return verified(path, extra["sha256"], what) if extra.get("sha256") else path


def shipped_config_path(entry: Mapping[str, Any]) -> Optional[str]:
    """The full training config shipped with an entry (verified), or None when the entry has none."""
    return _extra_path(entry, "config", "shipped config")


def calibration_path(entry: Mapping[str, Any]) -> Optional[str]:
    """The calibration JSON shipped with an entry (verified), or None when the entry has none."""
    return _extra_path(entry, "calibration", "shipped calibration")


def default_model_config(opts: Iterable = (), name: Optional[str] = None) -> CfgNode:
    """The unfrozen config of the shipped model ``name`` (:func:`.model_zoo.get_config` with ``trained=True``:
    weights ``wssdl_d2://<name>``) with ``opts`` (KEY VALUE ...) merged, for tools given no ``--config-file``.

    Raises CheckpointNotPublished (ShippedFileMissing) saying how to get a model when it is not installed."""
    from ..config import merge_pairs, resolve_device
    from .model_zoo import get_config

    name = name or DEFAULT_MODEL
    try:
        entry = checkpoint_entry(name)
    except CheckpointNotPublished:
        raise CheckpointNotPublished(
            f"no --config-file given, and the default model {name} is not shipped in this installation (no entry in "
            f"{index_paths()}); {HOW_TO_GET}") from None
    entry_weights_path(entry)  # fail now, with how to get it, rather than inside Detectron2's checkpointer
    cfg = get_config(name, trained=True)
    merge_pairs(cfg, opts)
    return resolve_device(cfg)


def default_model_note(name: Optional[str] = None) -> str:
    """The one line a tool prints when it falls back to the shipped model."""
    name = name or DEFAULT_MODEL
    entry = checkpoint_entry(name)
    weights = os.path.basename(entry.get("packaged") or entry["file"])
    return (f"no --config-file given: using the shipped model {name} ({weights}, sha256 {entry['sha256'][:12]}, "
            f"trained on {entry.get('trained_on', '?')}); see MODEL_ZOO.md")


def tool_model(config_file: Optional[str], opts: Iterable = (), calibration: Optional[str] = None,
               register: bool = False, log: Callable[[str], Any] = print) -> Tuple[CfgNode, Any]:
    """The frozen config and the malignancy calibration a tool runs with.

    Args:
        config_file: the user's ``--config-file``; None: the shipped :data:`DEFAULT_MODEL` (one line is logged).
        opts: KEY VALUE overrides. calibration: a ``calibration.json`` given by the user (wins over a shipped one).
        register: register the prepared datasets, as :func:`wssdl_d2.config.load_config` does.
    Returns:
        (cfg, :class:`~wssdl_d2.evaluation.calibration.Calibration` or None): the shipped model's calibration is
        used when its weights are the model's (no ``--config-file``, or ``MODEL.WEIGHTS wssdl_d2://<name>``).
    Raises FileNotFoundError / ValueError naming the file, CheckpointNotPublished saying how to get a model.
    """
    from ..config import merge_config
    from ..evaluation.calibration import load_calibration
    from .handler import PREFIX

    if config_file:
        cfg = merge_config(config_file, opts)
    else:
        cfg = default_model_config(opts)
        log(default_model_note())
    shipped = None
    if not calibration and cfg.MODEL.WEIGHTS.startswith(PREFIX):
        try:
            shipped = calibration_path(checkpoint_entry(cfg.MODEL.WEIGHTS[len(PREFIX):]))
        except CheckpointNotPublished:
            shipped = None  # the checkpointer reports the unpublished name
    chosen = calibration or shipped
    cfg.freeze()
    if register:
        from ..data import default_dataset_root, register_datasets_under

        register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
    return cfg, load_calibration(chosen) if chosen else None
