"""Datasets (BUSI, VOC-style, COCO JSON with supervision), splits, and the synthetic phantom."""
from .errors import DatasetError
from .mapper import WSSDLDatasetMapper
from .streams import build_stream_loader
from .voc import load_voc_wssdl, register_voc_wssdl
from .wssdl_json import (
    IMAGE_LABEL_NAMES,
    THING_CLASSES,
    default_dataset_root,
    load_wssdl_json,
    register_datasets_under,
    register_wssdl_json,
    write_wssdl_json,
)

__all__ = [
    "DatasetError", "IMAGE_LABEL_NAMES", "THING_CLASSES", "WSSDLDatasetMapper", "build_stream_loader",
    "default_dataset_root", "load_voc_wssdl",
    "load_wssdl_json", "register_datasets_under", "register_voc_wssdl", "register_wssdl_json", "write_wssdl_json",
]
