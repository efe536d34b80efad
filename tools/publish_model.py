#!/usr/bin/env python
"""Publish a trained checkpoint to the wssdl_d2 model zoo.

Runs wssdl_d2.cli.publish_model.main (a maintainer's tool: no console command).
"""
import sys

from wssdl_d2.cli.publish_model import main

if __name__ == "__main__":
    sys.exit(main())
