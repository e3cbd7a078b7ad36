#!/usr/bin/env python
"""Parameters and multiply-adds of a network, per stage.

The entry point of igc_mx.tools.summary, installed as ``igc-summary``.
"""
import sys

from igc_mx.tools.summary import main

if __name__ == '__main__':
    sys.exit(main())
