#!/usr/bin/env python
"""Audit a mean-teacher run's pseudo boxes on weak images whose true boxes are known (pseudo-box precision per class).

Runs wssdl_d2.cli.audit_teacher.main, also installed as the console command ``wssdl-audit-teacher``.
"""
import sys

from wssdl_d2.cli.audit_teacher import main

if __name__ == "__main__":
    sys.exit(main())
