#!/usr/bin/env python
"""Where do a detector's boxes land, and why does it miss? Compare configs on the same images.

Runs wssdl_d2.cli.diagnose_detections.main, also installed as the console command ``wssdl-diagnose-detections``.
"""
import sys

from wssdl_d2.cli.diagnose_detections import main

if __name__ == "__main__":
    sys.exit(main())
