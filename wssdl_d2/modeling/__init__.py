"""Model components registered in Detectron2's registries (MIL ROI heads, backbones)."""
from . import backbone  # noqa: F401  (registers the EfficientNet-Lite backbones)
from .box_predictor import WSSDLROIHeads  # noqa: F401  (inference scores: WSSDL.TEST.DETECTION_SCORE)
from .meta_arch import WSSDLRCNN  # noqa: F401  (registers the joint method's model, RPN and ROI heads)
from .roi_heads import MILROIHeads  # noqa: F401
from .rpn import StrongOnlyRPN  # noqa: F401
