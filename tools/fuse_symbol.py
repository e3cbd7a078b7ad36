#!/usr/bin/env python
"""Rewrite a saved symbol so that its IGC units run the fused operator.

    python tools/fuse_symbol.py IN-symbol.json OUT-symbol.json

Every Reorder(L) -> 1x1 Convolution(num_group=M, no_bias) -> Reorder(M) becomes one
InterleavedGroupConv (igc_mx.rewrite.fuse_igc). Argument names and shapes do not
change, so the checkpoint of IN (the .params file) loads into OUT unchanged.
"""
import argparse
import sys

import mxnet as mx

from igc_mx.atomic import atomic_path
from igc_mx.rewrite import count_fused, fuse_igc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', help='symbol file to read (e.g. a published *-symbol.json)')
    parser.add_argument('target', help='symbol file to write (written atomically)')
    args = parser.parse_args(argv)
    symbol = mx.sym.load(args.source)
    fused = fuse_igc(symbol)
    with atomic_path(args.target) as tmp:
        fused.save(tmp)
    added = count_fused(fused) - count_fused(symbol)
    print(f'{args.source}: {added} IGC unit(s) fused -> {args.target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
