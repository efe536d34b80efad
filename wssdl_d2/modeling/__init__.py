"""Model components registered in Detectron2's registries (MIL ROI heads, backbones)."""
