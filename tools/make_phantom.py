#!/usr/bin/env python
"""Generate the synthetic phantom dataset in BUSI's layout and prepare its dataset files.

Runs wssdl_d2.cli.make_phantom.main, also installed as the console command ``wssdl-make-phantom``.
"""
import sys

from wssdl_d2.cli.make_phantom import main

if __name__ == "__main__":
    sys.exit(main())
