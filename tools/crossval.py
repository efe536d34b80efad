#!/usr/bin/env python
"""K-fold cross-validation of two or more configs over the whole pool, compared image by image.

Runs wssdl_d2.cli.crossval.main, also installed as the console command ``wssdl-crossval``.
"""
import sys

from wssdl_d2.cli.crossval import main

if __name__ == "__main__":
    sys.exit(main())
