"""Backbone configs: the EfficientNet dataset configs agree with configs/Base-WSSDL-EffNetLite0.yaml, and
Detectron2's ResNets (18/34/50/101, BN / GN / FrozenBN) build with the base FPN (P3-P6). No weights are fetched."""
import glob
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_backbone

from wssdl_d2.config import add_wssdl_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
BACKBONE_KEYS = ("MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD", "MODEL.BACKBONE.NAME", "MODEL.FPN.IN_FEATURES", "SOLVER.BASE_LR",
                 "INPUT.FORMAT", "WSSDL.EFFICIENTNET")


def load(path, *opts):
    cfg = get_cfg()
    add_wssdl_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def lookup(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


EFFNET_CONFIGS = sorted(glob.glob(os.path.join(CONFIGS, "Phantom", "*effnet*.yaml")))
# plain_detectron2.yaml is the stock Detectron2 reference row (R18 from scratch by design, no project base config)
BUSI_CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIGS, "BUSI", "*.yaml"))
                      if "Base-" not in p and not p.endswith("plain_detectron2.yaml"))
R18_CONFIGS = [p for p in BUSI_CONFIGS if p.endswith("_r18.yaml")]


def test_there_are_backbone_variant_configs():
    names = {os.path.relpath(p, CONFIGS) for p in EFFNET_CONFIGS + R18_CONFIGS}
    assert {"BUSI/strong_only_r18.yaml", "BUSI/wssdl_r18.yaml", "Phantom/strong_only_effnet.yaml",
            "Phantom/wssdl_effnet.yaml"} <= names


@pytest.mark.parametrize("path", EFFNET_CONFIGS, ids=lambda p: os.path.relpath(p, CONFIGS))
def test_phantom_effnet_configs_repeat_the_base_backbone_keys(path):
    base = load(os.path.join(CONFIGS, "Base-WSSDL-EffNetLite0.yaml"))
    cfg = load(path)
    for key in BACKBONE_KEYS:
        assert lookup(cfg, key) == lookup(base, key), f"{path}: {key} differs from Base-WSSDL-EffNetLite0.yaml"
    sibling = load(path.replace("_effnet", ""))
    assert cfg.DATASETS.TRAIN == sibling.DATASETS.TRAIN and cfg.OUTPUT_DIR != sibling.OUTPUT_DIR


@pytest.mark.parametrize("path", BUSI_CONFIGS, ids=lambda p: os.path.relpath(p, CONFIGS))
def test_busi_configs_default_to_effnet_and_r18_siblings_repeat_the_resnet_keys(path):
    """Every BUSI config trains the ImageNet EfficientNet-Lite0 (the CPU default), except the *_r18 siblings, which
    carry the from-scratch ResNet-18 keys of Base-WSSDL.yaml and differ from their sibling in nothing else."""
    cfg = load(path)
    if not path.endswith("_r18.yaml"):
        base = load(os.path.join(CONFIGS, "Base-WSSDL-EffNetLite0.yaml"))
        for key in BACKBONE_KEYS:
            if key != "SOLVER.BASE_LR":  # the BUSI recipe's own peak LR (Base-BUSI.yaml), checked below
                assert lookup(cfg, key) == lookup(base, key), f"{path}: {key} differs from Base-WSSDL-EffNetLite0.yaml"
        recipe = load(os.path.join(CONFIGS, "BUSI", "Base-BUSI.yaml"))
        assert cfg.SOLVER.BASE_LR == recipe.SOLVER.BASE_LR, f"{path}: SOLVER.BASE_LR differs from Base-BUSI.yaml"
        return
    base = load(os.path.join(CONFIGS, "Base-WSSDL.yaml"))
    for key in BACKBONE_KEYS[:-1] + ("MODEL.RESNETS",):
        assert lookup(cfg, key) == lookup(base, key), f"{path}: {key} differs from Base-WSSDL.yaml"
    sibling = load(path.replace("_r18", ""))
    skip = set(BACKBONE_KEYS) | {"OUTPUT_DIR"}
    for section in ("MODEL", "INPUT", "SOLVER", "DATASETS", "WSSDL"):
        for key, value in cfg[section].items():
            name = f"{section}.{key}"
            if name not in skip and not any(s.startswith(name + ".") for s in skip) and key != "BACKBONE":
                assert value == sibling[section][key], f"{path}: {name} differs from its sibling"
    assert cfg.OUTPUT_DIR != sibling.OUTPUT_DIR


def test_r50_imagenet_config_builds_a_frozen_resnet50_without_fetching():
    cfg = load(os.path.join(CONFIGS, "Base-WSSDL-R50-ImageNet.yaml"))
    assert cfg.MODEL.WEIGHTS.startswith("detectron2://ImageNetPretrained/")  # loaded later, by the checkpointer
    backbone = build_backbone(cfg)
    assert backbone.bottom_up.output_shape()["res5"].channels == 2048
    assert isinstance(backbone.bottom_up.stem.conv1.norm, FrozenBatchNorm2d)
    assert not any(p.requires_grad for p in backbone.bottom_up.res2.parameters())
    assert all(p.requires_grad for p in backbone.bottom_up.res3.parameters())


@pytest.mark.parametrize("depth,norm", [(18, "BN"), (34, "GN"), (101, "FrozenBN")])
def test_resnet_variants_build_with_the_base_fpn(depth, norm):
    opts = ["MODEL.RESNETS.DEPTH", depth, "MODEL.RESNETS.NORM", norm,
            "MODEL.RESNETS.RES2_OUT_CHANNELS", 64 if depth < 50 else 256]
    backbone = build_backbone(load(os.path.join(CONFIGS, "Base-WSSDL.yaml"), *opts)).eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in features.items()} == {"p3": 8, "p4": 4, "p5": 2, "p6": 1}
    assert len(backbone.bottom_up.res4) == {18: 2, 34: 6, 50: 6, 101: 23}[depth]
