"""Datasets (BUSI, VOC-style, COCO JSON with supervision), splits, and the synthetic phantom."""
from typing import List, Optional

from .errors import DatasetError
from .image_io import install_in_detectron2
from .folds import fold_dataset_name, register_fold_datasets_under
from .mapper import WSSDLDatasetMapper
from .streams import build_stream_loader
from .voc import load_voc_wssdl, register_voc_wssdl
from .wssdl_json import (
    IMAGE_LABEL_NAMES,
    THING_CLASSES,
    default_dataset_root,
    load_wssdl_json,
    register_wssdl_json,
    write_wssdl_json,
)
from .wssdl_json import register_datasets_under as _register_split_datasets_under

install_in_detectron2()  # Detectron2's mappers read images as the rest of wssdl_d2 does (image_io)


def register_datasets_under(root: str) -> List[str]:
    """Register every prepared dataset under ``root``: ``<root>/<name>/<split>.json`` as ``<name>_<split>`` and the
    cross-validation folds ``<root>/<name>/fold<k>/<split>.json`` as ``<name>_fold<k>_<split>`` (names already
    registered are left alone). Returns the names registered now."""
    return _register_split_datasets_under(root) + register_fold_datasets_under(root)


def register_prepared_datasets(root: Optional[str] = None) -> List[str]:
    """Register the prepared datasets under ``root`` (default: ``$WSSDL_DATASETS``, else ``./datasets``) in
    Detectron2's catalogs, as :func:`register_datasets_under` does. Importing wssdl_d2 scans no folder: this runs when
    a config is loaded (:func:`wssdl_d2.config.load_config`, with ``WSSDL.DATASET_ROOT``) and when a trainer builds
    its data loaders; call it yourself to use the datasets in ``DatasetCatalog`` before either. Idempotent (names
    already registered are left alone). Returns the names registered now."""
    return register_datasets_under(root or default_dataset_root())


__all__ = [
    "DatasetError", "IMAGE_LABEL_NAMES", "THING_CLASSES", "WSSDLDatasetMapper", "build_stream_loader",
    "default_dataset_root", "fold_dataset_name", "load_voc_wssdl",
    "load_wssdl_json", "register_datasets_under", "register_prepared_datasets", "register_voc_wssdl",
    "register_wssdl_json", "write_wssdl_json",
]
