#!/usr/bin/env python
"""CPU cost of detectors that differ in their backbone: training seconds per iteration and inference images/s.

Runs wssdl_d2.cli.benchmark_backbones.main, also installed as the console command ``wssdl-benchmark-backbones``.
"""
import sys

from wssdl_d2.cli.benchmark_backbones import main

if __name__ == "__main__":
    sys.exit(main())
