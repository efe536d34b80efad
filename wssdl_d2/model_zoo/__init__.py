"""The model zoo: zoo-style configs, the checkpoint index, verified downloads and safe loading.

- :func:`get_config_file`, :func:`get_config`, :func:`get` (as ``detectron2.model_zoo``),
- ``checkpoints.json`` and ``$WSSDL_MODEL_INDEX`` (:mod:`.index`), the cache ``$WSSDL_CACHE`` (:mod:`.download`),
- the ``wssdl_d2://`` prefix for ``MODEL.WEIGHTS`` (:mod:`.handler`, registered on import),
- weights-only loading (:mod:`.safe_load`); publishing and shipping are :mod:`wssdl_d2.release`
  (``tools/publish_model.py``).
"""
from .download import ChecksumError, DownloadError, cached_download, default_cache_dir
from .handler import register_handler, resolve_zoo_path
from .index import CheckpointNotPublished, checkpoint_entry, published_models
from .model_zoo import get, get_config, get_config_file
from .safe_load import (SafeDetectionCheckpointer, UnsafeCheckpointError, build_trained_model, load_checkpoint,
                        load_model_weights)
from .shipped import PREFIX

register_handler()

__all__ = [
    "get", "get_config", "get_config_file", "checkpoint_entry", "published_models", "CheckpointNotPublished",
    "cached_download", "default_cache_dir", "ChecksumError", "DownloadError", "PREFIX", "resolve_zoo_path",
    "load_checkpoint", "load_model_weights", "build_trained_model", "SafeDetectionCheckpointer", "UnsafeCheckpointError",
]
