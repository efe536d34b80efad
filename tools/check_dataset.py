#!/usr/bin/env python
"""Check datasets and report every problem at once; exit status 1 when there is any.

Runs wssdl_d2.cli.check_dataset.main, also installed as the console command ``wssdl-check-dataset``.
"""
import sys

from wssdl_d2.cli.check_dataset import main

if __name__ == "__main__":
    sys.exit(main())
