#!/usr/bin/env python
"""Rewrite a saved symbol to the fast IGC operators.

The entry point of igc_mx.tools.fuse_symbol, installed as ``igc-fuse-symbol``.
"""
import sys

from igc_mx.tools.fuse_symbol import main

if __name__ == '__main__':
    sys.exit(main())
