"""The model a tool runs with: the user's ``--config-file``, else the model shipped with the package
(:data:`DEFAULT_MODEL`, with its weights ``wssdl_d2://<name>`` and its calibration); the shipped files
themselves are :mod:`wssdl_d2.model_zoo.shipped`'s."""
import os
from typing import Any, Callable, Iterable, Optional, Tuple

from detectron2.config import CfgNode

from ..config import merge_config, merge_pairs, resolve_device
from ..evaluation.calibration import load_calibration
from ..model_zoo.index import CheckpointNotPublished, checkpoint_entry, index_paths
from ..model_zoo.model_zoo import get_config
from ..model_zoo.shipped import HOW_TO_GET, PREFIX, calibration_path, entry_weights_path

#: The model the tools use when given no config and no weights.
DEFAULT_MODEL = "BUSI_BrEaST/fully_supervised.yaml"


def default_model_config(opts: Iterable = (), name: Optional[str] = None) -> CfgNode:
    """The unfrozen config of the shipped model ``name`` (:func:`wssdl_d2.model_zoo.get_config` with
    ``trained=True``: weights ``wssdl_d2://<name>``) with ``opts`` (KEY VALUE ...) merged, for tools given no
    ``--config-file``.

    Raises CheckpointNotPublished (ShippedFileMissing) saying how to get a model when it is not installed."""
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
        from ..data import register_prepared_datasets

        register_prepared_datasets(cfg.WSSDL.DATASET_ROOT)
    return cfg, load_calibration(chosen) if chosen else None
