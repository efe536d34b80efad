#!/usr/bin/env python
"""Rank weakly labelled images by how much an expert's box would help; CSV + contact sheet for annotators.

Runs wssdl_d2.cli.suggest_annotations.main, also installed as the console command ``wssdl-suggest-annotations``.
"""
import sys

from wssdl_d2.cli.suggest_annotations import main

if __name__ == "__main__":
    sys.exit(main())
