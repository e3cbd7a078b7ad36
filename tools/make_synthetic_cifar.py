#!/usr/bin/env python
"""A small synthetic dataset in the CIFAR-10 python format.

The entry point of igc_mx.datasets.synthetic_cifar.
"""
import sys

from igc_mx.datasets.synthetic_cifar import main

if __name__ == '__main__':
    sys.exit(main())
