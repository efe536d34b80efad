#!/usr/bin/env python
"""Simulated annotator: CorLoc against the number of boxes, active vs random choice of the images to box.

Runs wssdl_d2.cli.simulate_annotation.main, also installed as the console command ``wssdl-simulate-annotation``.
"""
import sys

from wssdl_d2.cli.simulate_annotation import main

if __name__ == "__main__":
    sys.exit(main())
