#!/usr/bin/env python
"""Paired comparison of two evaluated runs on the same test images.

Runs wssdl_d2.cli.compare.main, also installed as the console command ``wssdl-compare``.
"""
import sys

from wssdl_d2.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
