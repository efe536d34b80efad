#!/usr/bin/env python
"""Prepare BUSI (original layout) as the project's dataset files.

Runs wssdl_d2.cli.prepare_busi.main, also installed as the console command ``wssdl-prepare-busi``.
"""
import sys

from wssdl_d2.cli.prepare_busi import main

if __name__ == "__main__":
    sys.exit(main())
