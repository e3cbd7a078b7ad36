"""Rewrite a saved symbol so that its IGC units run the fast operators.

    igc-fuse-symbol IN-symbol.json OUT-symbol.json [--group-conv auto|true|false]
                    [--data-shape N,C,H,W]

Every Reorder(L) -> 1x1 Convolution(num_group=M, no_bias) -> Reorder(M) that is an IGC
unit (as many filters as the channels it reads, divisible by L and M) becomes one
InterleavedGroupConv, and IGC primary convolutions become GroupConvolution where
--group-conv says so (default 'auto': <= 16 filters per group, the builders' rule;
igc_mx.rewrite.fuse_igc). The channels are inferred from --data-shape (the shape of the
input 'data') when given, else read from the layers before each unit; a pattern whose
channels are unknown or not an IGC unit's is left as it is and listed. Argument names
and shapes do not change, so the checkpoint of IN (the .params file) loads into OUT
unchanged. Also ``python tools/fuse_symbol.py`` in a checkout.
"""
import argparse
import json
import sys

import mxnet as mx

from ..atomic import TargetError, atomic_path, check_target
from ..model_files import error_line, sizes
from ..rewrite import GROUP_CONV_OP, RewriteError, count_fused, fuse_igc

GROUP_CONV_CHOICES = {'auto': 'auto', 'true': True, 'false': False}


def _shape(text):
    dims = sizes(text)
    if dims is None or len(dims) < 2:
        raise argparse.ArgumentTypeError('expected positive comma-separated sizes such as '
                                         f'1,3,224,224, got {text!r}')
    return dims


def _load(path):
    """The symbol in ``path``; ValueError with one line saying why it is not one."""
    try:
        with open(path, encoding='utf-8') as f:
            graph = json.load(f)
    except OSError as err:
        raise ValueError(f'{path}: cannot read ({err.strerror})') from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f'{path}: not JSON ({err})') from None
    if not isinstance(graph, dict) or not isinstance(graph.get('nodes'), list) or \
            'heads' not in graph:
        raise ValueError(f'{path}: not an MXNet symbol file (no "nodes" and "heads")')
    try:
        return mx.sym.load_json(json.dumps(graph))
    except mx.base.MXNetError as err:
        raise ValueError(f'{path}: MXNet cannot load it as a symbol '
                         f'({error_line(err)})') from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('source', help='symbol file to read (e.g. a published *-symbol.json)')
    parser.add_argument('target', help='symbol file to write (written atomically)')
    parser.add_argument('--group-conv', choices=sorted(GROUP_CONV_CHOICES), default='auto',
                        help='primary convolutions as GroupConvolution: auto (<= 16 filters '
                             'per group), true (all), false (none)')
    parser.add_argument('--data-shape', type=_shape,
                        help="shape of the input 'data' (e.g. 1,3,224,224), to infer every "
                             "unit's channels from")
    args = parser.parse_args(argv)
    skipped = []
    try:
        check_target(args.target, (args.source,), 'target')
        symbol = _load(args.source)
        fused = fuse_igc(symbol, group_conv=GROUP_CONV_CHOICES[args.group_conv],
                         shapes={'data': args.data_shape} if args.data_shape else None,
                         skipped=skipped)
        with atomic_path(args.target, (args.source,), 'target') as tmp:
            fused.save(tmp)
    except (ValueError, RewriteError, TargetError) as err:
        print(f'fuse_symbol: error: {err}', file=sys.stderr)
        return 1
    except OSError as err:
        print(f'fuse_symbol: error: {err.filename or args.target}: cannot write '
              f'({err.strerror})', file=sys.stderr)
        return 1
    added = count_fused(fused) - count_fused(symbol)
    grouped = count_fused(fused, GROUP_CONV_OP) - count_fused(symbol, GROUP_CONV_OP)
    print(f'{args.source}: {added} IGC unit(s) fused, {grouped} primary conv(s) as '
          f'{GROUP_CONV_OP} -> {args.target}')
    for name, reason in skipped:
        print(f'  left unfused: {name}: {reason}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
