#!/usr/bin/env python
"""Grad-CAM overlay for a detection: where the model looks when it scores the top detection or the MoI.

Runs wssdl_d2.cli.saliency.main, also installed as the console command ``wssdl-saliency``.
"""
import sys

from wssdl_d2.cli.saliency import main

if __name__ == "__main__":
    sys.exit(main())
