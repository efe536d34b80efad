#!/usr/bin/env python
"""Train or evaluate a wssdl_d2 model, in Detectron2's style.

Runs wssdl_d2.cli.train_net.main, also installed as the console command ``wssdl-train``.
"""
import sys

from wssdl_d2.cli.train_net import main

if __name__ == "__main__":
    sys.exit(main())
