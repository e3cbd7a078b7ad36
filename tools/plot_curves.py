#!/usr/bin/env python
"""Train/test error curves of training logs.

The entry point of igc_mx.tools.plot_curves, installed as ``igc-plot-curves``.
"""
import sys

from igc_mx.tools.plot_curves import main

if __name__ == '__main__':
    sys.exit(main())
