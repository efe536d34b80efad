"""The checkpoint index: which published checkpoint belongs to which zoo config.

``checkpoints.json`` (shipped in this package) maps a config name, relative to ``configs/`` (e.g.
``"BUSI/wssdl.yaml"``), to an entry::

    {"file": "BUSI/wssdl/model_final_<sha8>.pth",   # path in the cache and on the server
     "url": "https://.../BUSI/wssdl/model_final_<sha8>.pth",
     "sha256": "<64 hex>", "size": <bytes>,
     "config_overrides": ["KEY", "VALUE", ...],      # applied after the config file (may be empty)
     "trained_on": "busi_train_strong_20 + busi_train_weak_20", "command": "python tools/train_net.py ...",
     "metrics": {"dataset": "busi_val", "ci_level": 0.95, "CorLoc": {"value": .., "lo": .., "hi": ..}, ...},
     "published": "YYYY-MM-DD"}

A model *shipped* inside the package (or beside a lab's own index) has, instead of or besides ``file`` / ``url``::

    {"packaged": "trained/BUSI/wssdl/model_<sha8>.safetensors",  # relative to the index file's folder
     "sha256": "<64 hex>", "size": <bytes>, "dtype": "float16",   # how the weights are stored (read back as fp32)
     "config": {"path": "trained/BUSI/wssdl/config.yaml", "sha256": ...},             # the full training config
     "calibration": {"path": "trained/BUSI/wssdl/calibration.json", "sha256": ...},   # optional
     "storage_check": {...}, ...}                                  # fp32 vs stored detections, measured when shipped

It is used from the package, verified by its sha256 and never downloaded; a ``url`` beside it is a mirror used
only when the packaged file is absent (see :mod:`.shipped`).

``$WSSDL_MODEL_INDEX`` names a further index file (same format) whose entries are added to, and take precedence
over, the packaged ones: a lab can share checkpoints without editing the installed package.
"""
import json
import os
from typing import Any, Dict, List

from ..errors import UserError

PACKAGED_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints.json")
INDEX_FORMAT = 1
REQUIRED_KEYS = ("file", "url", "sha256")  # of a downloaded entry; a shipped one needs "packaged" and "sha256"
INDEX_DIR_KEY = "_index_dir"  # added by published_models(): the folder of the index file an entry came from


class CheckpointNotPublished(UserError, LookupError):
    """No usable index entry for a config; the message says which names are published."""


def empty_index() -> Dict[str, Any]:
    return {"format": INDEX_FORMAT, "models": {}}


def read_index(path: str) -> Dict[str, Any]:
    """Read and check one index file. A missing file is an empty index; bad content is a ValueError naming it."""
    if not os.path.exists(path):
        return empty_index()
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable checkpoint index ({error})") from error
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("models"), dict):
        raise ValueError(f"{path}: a checkpoint index is {{'format': {INDEX_FORMAT}, 'models': {{...}}}}")
    for name, entry in index["models"].items():
        required = ("packaged", "sha256") if isinstance(entry, dict) and entry.get("packaged") else REQUIRED_KEYS
        missing = [key for key in required if not isinstance(entry, dict) or not entry.get(key)]
        if missing:
            raise ValueError(f"{path}: entry {name!r} lacks {missing}")
        sha = entry["sha256"]
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower()):
            raise ValueError(f"{path}: entry {name!r} has sha256 {sha!r}, not 64 hex digits")
        for key in (k for k in ("packaged", "config", "calibration") if entry.get(k)):
            relative = entry[key] if key == "packaged" else (entry[key] or {}).get("path", "")
            if not isinstance(relative, str) or not relative or os.path.isabs(relative) or ".." in relative.split("/"):
                raise ValueError(f"{path}: entry {name!r}: {key} must be a path relative to the index's folder, "
                                 f"not {relative!r}")
    return index


def index_paths() -> List[str]:
    """The index files in force, lowest precedence first: the packaged one, then ``$WSSDL_MODEL_INDEX``."""
    paths = [PACKAGED_INDEX]
    if os.environ.get("WSSDL_MODEL_INDEX"):
        paths.append(os.path.expanduser(os.environ["WSSDL_MODEL_INDEX"]))
    return paths


def published_models() -> Dict[str, Dict[str, Any]]:
    """Config name -> index entry, over all index files in force; each entry also holds ``_index_dir``, the folder
    of its index file (where its ``packaged`` files are)."""
    models = {}
    for path in index_paths():
        folder = os.path.dirname(os.path.abspath(path))
        models.update({name: {**entry, INDEX_DIR_KEY: folder} for name, entry in read_index(path)["models"].items()})
    return models


def checkpoint_entry(config_name: str) -> Dict[str, Any]:
    """The index entry of ``config_name`` (a zoo config such as ``"BUSI/wssdl.yaml"``, or its published file
    name); CheckpointNotPublished listing what is published otherwise."""
    models = published_models()
    name = config_name.replace("\\", "/")
    if name in models:
        return models[name]
    for entry in models.values():
        if name in (entry.get("file"), entry.get("packaged")):
            return entry
    raise CheckpointNotPublished(f"no published checkpoint for {config_name!r} in {index_paths()}; "
                      f"published: {sorted(models) or 'none'}")
