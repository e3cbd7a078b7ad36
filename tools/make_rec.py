#!/usr/bin/env python
"""Build byte-reproducible RecordIO datasets; verify them; channel statistics.

The entry point of igc_mx.tools.make_rec, installed as ``igc-make-rec``.
"""
import sys

from igc_mx.tools.make_rec import main

if __name__ == '__main__':
    sys.exit(main())
