#!/usr/bin/env python
"""Self-training with pseudo boxes (paper Table IV), resumable round by round.

Runs wssdl_d2.cli.self_train.main, also installed as the console command ``wssdl-self-train``.
"""
import sys

from wssdl_d2.cli.self_train import main

if __name__ == "__main__":
    sys.exit(main())
