"""Rewrite a saved symbol so that its IGC units run the fast operators.

    igc-fuse-symbol IN-symbol.json OUT-symbol.json [--group-conv auto|true|false]

Every Reorder(L) -> 1x1 Convolution(num_group=M, no_bias) -> Reorder(M) becomes one
InterleavedGroupConv, and IGC primary convolutions become GroupConvolution where
--group-conv says so (default 'auto': <= 16 filters per group, the builders' rule;
igc_mx.rewrite.fuse_igc). Argument names and shapes do not change, so the
checkpoint of IN (the .params file) loads into OUT unchanged. Also
``python tools/fuse_symbol.py`` in a checkout.
"""
import argparse
import sys

import mxnet as mx

from ..atomic import atomic_path
from ..rewrite import GROUP_CONV_OP, count_fused, fuse_igc

GROUP_CONV_CHOICES = {'auto': 'auto', 'true': True, 'false': False}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', help='symbol file to read (e.g. a published *-symbol.json)')
    parser.add_argument('target', help='symbol file to write (written atomically)')
    parser.add_argument('--group-conv', choices=sorted(GROUP_CONV_CHOICES), default='auto',
                        help='primary convolutions as GroupConvolution: auto (<= 16 filters '
                             'per group), true (all), false (none)')
    args = parser.parse_args(argv)
    symbol = mx.sym.load(args.source)
    fused = fuse_igc(symbol, group_conv=GROUP_CONV_CHOICES[args.group_conv])
    with atomic_path(args.target) as tmp:
        fused.save(tmp)
    added = count_fused(fused) - count_fused(symbol)
    grouped = count_fused(fused, GROUP_CONV_OP) - count_fused(symbol, GROUP_CONV_OP)
    print(f'{args.source}: {added} IGC unit(s) fused, {grouped} primary conv(s) as '
          f'{GROUP_CONV_OP} -> {args.target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
