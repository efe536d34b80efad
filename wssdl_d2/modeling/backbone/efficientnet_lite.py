"""EfficientNet-Lite as a Detectron2 ``Backbone``: MBConv blocks with ReLU6, no squeeze-excitation, fixed stem / head.

The network is grouped into stages by output stride, the way Detectron2's ResNet is:

======  ======  ===========================  ===========================
stage   stride  blocks (Lite0)               channels (Lite0 / 1 / 2)
======  ======  ===========================  ===========================
stem    2       3x3 conv (32) + MBConv1 x1   16 / 16 / 16
s4      4       MBConv6 k3 x2                24 / 24 / 24
s8      8       MBConv6 k5 x2                40 / 40 / 48
s16     16      MBConv6 k3 x3, k5 x3         112 / 112 / 120
s32     32      MBConv6 k5 x4, k3 x1         320 / 320 / 352
======  ======  ===========================  ===========================

``freeze_at`` counts stages as Detectron2's ResNet does: 1 freezes the stem, 2 the stem and ``s4``, and so on.
With ``num_classes`` the ImageNet head (1x1 conv to 1280 channels, global average pool, linear) is built too
and its logits are returned under the key ``"linear"``; a detector does not need it.

Convolutions pad symmetrically (``k // 2``), so stride-2 feature maps stay aligned with the image grid that
Detectron2's anchors and ROIAlign assume (the TensorFlow original pads "SAME", half a pixel to the bottom-right;
the pretrained weights classify correctly either way, see tests/test_backbone_efficientnet.py).
Stochastic depth (drop-connect) of the ImageNet training recipe is not used.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import CNNBlockBase, Conv2d, ShapeSpec, get_norm
from detectron2.modeling.backbone import Backbone

# (expand ratio, kernel, stride of the first block, output channels, repeats) of EfficientNet-B0 / Lite0.
BASE_BLOCKS = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # the TensorFlow training's batch-norm epsilon; the pretrained statistics assume it


@dataclass(frozen=True)
class LiteVariant:
    """Compound scaling of one EfficientNet-Lite model: channel (width) and depth multipliers, ImageNet size."""

    width: float
    depth: float
    resolution: int


VARIANTS = {
    "lite0": LiteVariant(1.0, 1.0, 224),
    "lite1": LiteVariant(1.0, 1.1, 240),
    "lite2": LiteVariant(1.1, 1.2, 260),
    "lite3": LiteVariant(1.2, 1.4, 280),
    "lite4": LiteVariant(1.4, 1.8, 300),
}


def get_variant(name: str) -> LiteVariant:
    """The :class:`LiteVariant` called ``name`` ("lite0".."lite4", case-insensitive); ValueError otherwise."""
    key = str(name).lower().replace("efficientnet-", "").replace("efficientnet_", "")
    if key not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {name!r}; known: {sorted(VARIANTS)}")
    return VARIANTS[key]


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times ``width``, rounded to a multiple of ``divisor`` without dropping below 90% of the product."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def block_specs(variant: LiteVariant) -> List[Tuple[int, int, int, int, int]]:
    """Per-block (expand ratio, kernel, stride, in channels, out channels) of a variant, first to last.

    Lite models keep the first and the last group at one block each and the stem / head widths fixed.
    """
    specs = []
    in_channels = STEM_CHANNELS
    last = len(BASE_BLOCKS) - 1
    for index, (expand, kernel, stride, out, repeats) in enumerate(BASE_BLOCKS):
        out = scale_channels(out, variant.width)
        if 0 < index < last:
            repeats = int(math.ceil(repeats * variant.depth))
        for i in range(repeats):
            specs.append((expand, kernel, stride if i == 0 else 1, in_channels, out))
            in_channels = out
    return specs


def lite_norm(norm: str, channels: int) -> Optional[nn.Module]:
    """A normalisation layer for ``channels``: Detectron2's ``get_norm`` with the TensorFlow BN epsilon, and
    GroupNorm with ``gcd(32, channels)`` groups (EfficientNet widths such as 24 and 40 are not multiples of 32)."""
    if norm == "GN":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    layer = get_norm(norm, channels)
    if layer is not None and hasattr(layer, "running_var"):
        layer.eps = BN_EPS
    return layer


def conv_norm_act(in_channels: int, out_channels: int, kernel: int, stride: int, norm: str, groups: int = 1,
                  act: bool = True) -> Conv2d:
    """``kernel x kernel`` convolution (no bias, symmetric padding) + norm + optional ReLU6."""
    return Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=kernel // 2, groups=groups,
                  bias=False, norm=lite_norm(norm, out_channels), activation=F.relu6 if act else None)


class MBConv(CNNBlockBase):
    """Inverted residual block: 1x1 expand (ratio > 1) -> k x k depthwise (stride) -> 1x1 linear projection,
    with an identity shortcut when the stride is 1 and the channels match. (N, C_in, H, W) -> (N, C_out, H/s, W/s).
    """

    def __init__(self, in_channels, out_channels, stride, *, expand_ratio, kernel, norm="BN"):
        super().__init__(in_channels, out_channels, stride)
        hidden = in_channels * expand_ratio
        self.expand = conv_norm_act(in_channels, hidden, 1, 1, norm) if expand_ratio != 1 else None
        self.depthwise = conv_norm_act(hidden, hidden, kernel, stride, norm, groups=hidden)
        self.project = conv_norm_act(hidden, out_channels, 1, 1, norm, act=False)
        self.has_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.has_shortcut else y


class LiteStem(CNNBlockBase):
    """3x3 stride-2 convolution to 32 channels, then the first (expand ratio 1) MBConv: (N, 3, H, W) ->
    (N, 16, H/2, W/2)."""

    def __init__(self, in_channels, first_block, norm="BN"):
        expand, kernel, stride, block_in, block_out = first_block
        super().__init__(in_channels, block_out, 2 * stride)
        self.conv = conv_norm_act(in_channels, block_in, 3, 2, norm)
        self.block = MBConv(block_in, block_out, stride, expand_ratio=expand, kernel=kernel, norm=norm)

    def forward(self, x):
        return self.block(self.conv(x))


class EfficientNetLite(Backbone):
    """EfficientNet-Lite feature extractor with outputs named by stride ("stem", "s4", "s8", "s16", "s32").

    Args:
        variant (str): "lite0".."lite4".
        out_features (list[str]): stage names to return, e.g. ``["s8", "s16", "s32"]``; add ``"linear"`` (with
            ``num_classes``) for ImageNet logits.
        norm (str): "BN", "FrozenBN", "GN", "SyncBN" (Detectron2's names).
        freeze_at (int): stages to freeze, 0 = none, 1 = stem, 2 = stem + s4, ...
        num_classes (int or None): build the 1280-channel head and a linear classifier.
        in_channels (int): input channels (3).
        channels_last (bool): keep weights and activations in NHWC memory order. On a CPU the depthwise
            convolutions' backward pass is several times faster so (see benchmarks/notes/backbones.md); the
            features returned are then NHWC-strided tensors of the usual (N, C, H, W) shape.
    """

    def __init__(self, variant="lite0", out_features=("s8", "s16", "s32"), norm="BN", freeze_at=0,
                 num_classes=None, in_channels=3, channels_last=True):
        super().__init__()
        self.channels_last = channels_last
        self.variant = get_variant(variant)
        self.num_classes = num_classes
        specs = block_specs(self.variant)
        self.stem = LiteStem(in_channels, specs[0], norm)
        self.stage_names = ["stem"]
        self._out_feature_strides = {"stem": 2}
        self._out_feature_channels = {"stem": self.stem.out_channels}
        stride = 2
        stages = {}
        for expand, kernel, block_stride, block_in, block_out in specs[1:]:
            stride *= block_stride
            stages.setdefault(f"s{stride}", []).append(
                MBConv(block_in, block_out, block_stride, expand_ratio=expand, kernel=kernel, norm=norm))
        for name, blocks in stages.items():
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self._out_feature_strides[name] = int(name[1:])
            self._out_feature_channels[name] = blocks[-1].out_channels
        if num_classes is not None:
            self.head = conv_norm_act(self._out_feature_channels["s32"], HEAD_CHANNELS, 1, 1, norm)
            self.linear = nn.Linear(HEAD_CHANNELS, num_classes)
        known = self.stage_names + (["linear"] if num_classes is not None else [])
        unknown = [name for name in out_features if name not in known]
        if unknown:
            raise ValueError(f"EfficientNetLite: unknown out_features {unknown}; known: {known}")
        self._out_features = list(out_features)
        self._initialize()
        self.freeze(freeze_at)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _initialize(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def freeze(self, freeze_at: int = 0) -> "EfficientNetLite":
        """Freeze the first ``freeze_at`` stages (parameters fixed, BatchNorm -> FrozenBatchNorm). Returns self."""
        if not 0 <= freeze_at <= len(self.stage_names):
            raise ValueError(f"EfficientNetLite: freeze_at must be in 0..{len(self.stage_names)}, got {freeze_at}")
        for name in self.stage_names[:freeze_at]:
            stage = getattr(self, name)
            for block in (stage.children() if isinstance(stage, nn.Sequential) else [stage]):
                block.freeze()
        return self

    def forward(self, x):
        """(N, C, H, W) images -> dict of requested features {name: (N, C_name, H / stride, W / stride)} and,
        with a classifier, ``"linear"``: (N, num_classes) logits."""
        if x.dim() != 4:
            raise ValueError(f"EfficientNetLite takes (N, C, H, W) inputs, got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outputs = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        if "linear" in self._out_features:
            pooled = torch.flatten(F.adaptive_avg_pool2d(self.head(x), 1), 1)
            outputs["linear"] = self.linear(pooled)
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
                for name in self._out_features if name != "linear"}
