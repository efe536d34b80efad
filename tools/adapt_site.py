#!/usr/bin/env python
"""Adapt a trained model to a new site (hospital, scanner) from the site's diagnosis-only scans.

Runs wssdl_d2.cli.adapt_site.main, also installed as the console command ``wssdl-adapt-site``.
"""
import sys

from wssdl_d2.cli.adapt_site import main

if __name__ == "__main__":
    sys.exit(main())
