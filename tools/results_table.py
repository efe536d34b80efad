#!/usr/bin/env python
"""The paper-style results table of several evaluated runs, each paired against a reference run.

Runs wssdl_d2.cli.results_table.main, also installed as the console command ``wssdl-results-table``.
"""
import sys

from wssdl_d2.cli.results_table import main

if __name__ == "__main__":
    sys.exit(main())
