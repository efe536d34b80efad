#!/usr/bin/env python
"""Audit the pseudo boxes of a self-training round against the true boxes, where they are known.

Runs wssdl_d2.cli.audit_pseudo_labels.main, also installed as the console command ``wssdl-audit-pseudo-labels``.
"""
import sys

from wssdl_d2.cli.audit_pseudo_labels import main

if __name__ == "__main__":
    sys.exit(main())
