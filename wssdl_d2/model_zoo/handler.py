"""The ``wssdl_d2://`` path prefix: ``MODEL.WEIGHTS wssdl_d2://BUSI/wssdl.yaml`` means "the published checkpoint
of configs/BUSI/wssdl.yaml": the file shipped in the package when the index has one (no network), else downloaded
once into the cache; either way verified by its sha256 (see :mod:`.shipped`, :mod:`.download`).

The handler is registered in Detectron2's ``PathManager`` when ``wssdl_d2`` is imported, so every Detectron2
checkpointer (``tools/train_net.py``, ``DefaultPredictor``) resolves such paths.
"""
from typing import Optional

from iopath.common.file_io import PathHandler

from .index import checkpoint_entry
from .shipped import PREFIX, entry_weights_path


def resolve_zoo_path(path: str, cache_dir: Optional[str] = None) -> str:
    """Local file of a ``wssdl_d2://<config name or published file>`` path (the shipped file, or downloaded;
    verified either way)."""
    if not path.startswith(PREFIX):
        raise ValueError(f"{path!r} is not a {PREFIX} path")
    return entry_weights_path(checkpoint_entry(path[len(PREFIX):]), cache_dir=cache_dir)


class WSSDLZooHandler(PathHandler):
    """iopath handler for ``wssdl_d2://`` paths (read only)."""

    def _get_supported_prefixes(self):
        return [PREFIX]

    def _get_local_path(self, path, force=False, **kwargs):
        self._check_kwargs(kwargs)
        return resolve_zoo_path(path)

    def _open(self, path, mode="r", buffering=-1, **kwargs):
        if any(flag in mode for flag in "wax+"):
            raise ValueError(f"{path}: {PREFIX} paths are read only")
        self._check_kwargs(kwargs)
        return open(resolve_zoo_path(path), mode, buffering=buffering)

    def _exists(self, path, **kwargs):
        self._check_kwargs(kwargs)
        try:
            checkpoint_entry(path[len(PREFIX):])
        except LookupError:
            return False
        return True

    def _isfile(self, path, **kwargs):
        return self._exists(path, **kwargs)


_registered = []


def register_handler() -> None:
    """Register :class:`WSSDLZooHandler` in Detectron2's PathManager (once per process)."""
    from detectron2.utils.file_io import PathManager

    if not _registered:
        PathManager.register_handler(WSSDLZooHandler())
        _registered.append(True)
