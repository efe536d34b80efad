#!/usr/bin/env python
"""Calibrate a model's malignancy score into a probability of malignancy, from a cross-validation's out-of-fold
predictions.

Runs wssdl_d2.cli.calibrate.main, also installed as the console command ``wssdl-calibrate``.
"""
import sys

from wssdl_d2.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
