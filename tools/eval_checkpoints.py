#!/usr/bin/env python
"""Evaluate every checkpoint a training run saved: the validation curve (CorLoc with CI and AP50 vs iteration).

Runs wssdl_d2.cli.eval_checkpoints.main, also installed as the console command ``wssdl-eval-checkpoints``.
"""
import sys

from wssdl_d2.cli.eval_checkpoints import main

if __name__ == "__main__":
    sys.exit(main())
