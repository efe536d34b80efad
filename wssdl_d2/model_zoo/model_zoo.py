"""``get_config_file`` / ``get_config`` / ``get``: the project's configs double as a model zoo, as in
``detectron2.model_zoo``.

    from wssdl_d2 import model_zoo
    cfg_file = model_zoo.get_config_file("BUSI/wssdl.yaml")
    model = model_zoo.get("BUSI/wssdl.yaml", trained=True)   # weights from the checkpoint index, verified
"""
import os

from typing import Optional

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model

from ..config import merge_config
from .index import checkpoint_entry
from .safe_load import load_model_weights
from .shipped import PREFIX, shipped_config_path

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIRS = (
    # in the package (the wheel ships configs/ there); in a source checkout a link to configs/, resolved here so
    # that paths name the repository's configs/ folder
    os.path.realpath(os.path.join(_PACKAGE_DIR, "model_zoo", "configs")),
    os.path.join(os.path.dirname(_PACKAGE_DIR), "configs"),  # a source checkout whose link was not kept
)


def get_config_file(config_path: str) -> str:
    """Absolute path of a zoo config, named relative to ``configs/`` (e.g. ``"Phantom/strong_only.yaml"``).

    Raises FileNotFoundError naming the folders searched.
    """
    for folder in CONFIG_DIRS:
        path = os.path.join(folder, config_path)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{config_path} is not a wssdl_d2 zoo config (searched {list(CONFIG_DIRS)})")


def get_config(config_path: str, trained: bool = False) -> CfgNode:
    """The wssdl_d2 config of a zoo entry (a fresh, unfrozen CfgNode, :func:`wssdl_d2.config.merge_config`).

    With ``trained=True``: the full config shipped with the model when the index entry has one (the config it was
    trained with; so a wheel install needs no ``configs/`` folder), else the zoo config with the entry's
    ``config_overrides``; ``MODEL.WEIGHTS`` becomes ``wssdl_d2://<config_path>`` and backbone ImageNet
    initialisation is skipped (the checkpoint has all weights).
    """
    if not trained:
        return merge_config(get_config_file(config_path), [])
    entry = checkpoint_entry(config_path)
    weights = ["MODEL.WEIGHTS", PREFIX + config_path, "WSSDL.EFFICIENTNET.PRETRAINED", False]
    shipped = shipped_config_path(entry)
    if shipped:
        return merge_config(shipped, weights)
    return merge_config(get_config_file(config_path), [*entry.get("config_overrides", []), *weights])


def get(config_path: str, trained: bool = False, device: Optional[str] = None,
        allow_pickle: bool = False) -> torch.nn.Module:
    """A built model (Detectron2's ``build_model``) of a zoo config, with its published weights if ``trained``.

    Args:
        config_path (str): name relative to ``configs/``, e.g. ``"BUSI/wssdl.yaml"``.
        trained (bool): load the checkpoint of the index (shipped in the package, or downloaded to the cache;
            sha256-verified either way).
        device (str): "cpu" / "cuda"; default: CUDA when available.
        allow_pickle (bool): also read pickle checkpoints (only trusted ones; zoo files never need it).
    Returns:
        torch.nn.Module in training mode, like ``detectron2.model_zoo.get`` (call ``.eval()`` for inference).
    """
    cfg = get_config(config_path, trained=trained)
    cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(cfg)
    if trained:
        load_model_weights(model, cfg.MODEL.WEIGHTS, allow_pickle=allow_pickle)
    return model
