"""Models shipped inside the package: their files, verified by sha256, used offline.

A shipped entry of the checkpoint index (:mod:`.index`) names its files relative to the index file's folder
(``wssdl_d2/model_zoo/`` for the packaged ``checkpoints.json``)::

    trained/BUSI/wssdl/model_<sha8>.safetensors   weights only (safetensors: tensors and a text header, no code)
    trained/BUSI/wssdl/config.yaml                the full config the model was trained with (YAML, no _BASE_)
    trained/BUSI/wssdl/calibration.json           the calibration of its malignancy score (optional, parameters)

:func:`entry_weights_path` gives the weights of any index entry (the shipped file, else a verified download),
:func:`shipped_config_path` / :func:`calibration_path` the other two. :data:`PREFIX` names an entry as a path
(``wssdl_d2://<name>``, resolved by :mod:`.handler`). What the tools run when they are given neither a config nor
weights is command-line policy: :mod:`wssdl_d2.cli.default_model`.
"""
import os
from typing import Any, Mapping, Optional

from .download import ChecksumError, cached_download, file_sha256
from .index import INDEX_DIR_KEY, PACKAGED_INDEX, CheckpointNotPublished

#: The path prefix of a published model: ``wssdl_d2://<config name or published file>`` (an index entry).
PREFIX = "wssdl_d2://"
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
