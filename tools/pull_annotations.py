#!/usr/bin/env python
"""Read the experts' Label Studio annotations back as strong images of a new prepared split.

Runs wssdl_d2.cli.pull_annotations.main, also installed as the console command ``wssdl-pull-annotations``.
"""
import sys

from wssdl_d2.cli.pull_annotations import main

if __name__ == "__main__":
    sys.exit(main())
