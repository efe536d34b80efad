#!/usr/bin/env python
"""Speed and memory of the joint method against Detectron2's plain Faster R-CNN, side by side in one run.

Runs wssdl_d2.cli.benchmark.main, also installed as the console command ``wssdl-benchmark``.
"""
import sys

from wssdl_d2.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
