#!/usr/bin/env python
"""Run a trained model on images: drawings plus one JSON / CSV with the detections and the image diagnosis.

Runs wssdl_d2.cli.demo.main, also installed as the console command ``wssdl-demo``.
"""
import sys

from wssdl_d2.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
