#!/usr/bin/env python
"""Fit a site's detection score threshold from its image labels alone, cross-fitted over the site's folds, and
measure what it changes against tau = 0.5.

Runs wssdl_d2.cli.site_threshold.main, also installed as the console command ``wssdl-site-threshold``.
"""
import sys

from wssdl_d2.cli.site_threshold import main

if __name__ == "__main__":
    sys.exit(main())
