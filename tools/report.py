#!/usr/bin/env python
"""An HTML page (with PNGs) summarising one or several evaluated runs.

Runs wssdl_d2.cli.report.main, also installed as the console command ``wssdl-report``.
"""
import sys

from wssdl_d2.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
