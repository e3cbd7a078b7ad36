#!/usr/bin/env python
"""Start a distributed MXNet job.

The entry point of igc_mx.tools.launch, installed as ``igc-launch``.
"""
import sys

from igc_mx.tools.launch import main

if __name__ == '__main__':
    sys.exit(main())
