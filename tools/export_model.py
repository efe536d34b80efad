#!/usr/bin/env python
"""Export a trained model for deployment as TorchScript (traced), and check it against the Python model.

Runs wssdl_d2.cli.export_model.main, also installed as the console command ``wssdl-export``.
"""
import sys

from wssdl_d2.cli.export_model import main

if __name__ == "__main__":
    sys.exit(main())
