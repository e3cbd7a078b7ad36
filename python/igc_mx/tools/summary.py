"""Parameters and multiply-adds of a network, per stage and in total.

    igc-summary --network plain_igc --depth 38 --primary-partition 24 \\
        --secondary-partition 2 --dataset cifar10
    igc-summary --network resnet_igc_imgnet_d18 --primary-partition 4 \\
        --secondary-partition 32 --save-json igc-l4m32-symbol.json
    igc-summary --symbol-file PATH-symbol.json          # a saved symbol
    igc-summary --paper-table                           # the five ImageNet rows

Parameters are counted as the original's utility.cal_params did (every learnable
argument: conv and fc weights, fc bias, BatchNorm gamma and beta; no moving
averages). MACs are multiply-adds per image of the Convolution and FullyConnected
layers (the paper's "FLOPs" column). Also ``python tools/summary.py`` in a checkout.
"""
import argparse
import sys
from pathlib import Path

from .. import counting, model_files, networks
from ..atomic import TargetError, atomic_path, check_target

DATASETS = {'cifar10': (10, 'cifar'), 'cifar100': (100, 'cifar'), 'svhn': (10, 'cifar'),
            'imagenet': (1000, 'imagenet')}
DEFAULT_DEPTH = {'cifar': 62, 'imagenet': 18}       # the original's --depth defaults
# The authors' published symbol files, beside a developer's checkout (from its root).
REFERENCE_DIR = Path('..') / 'shared' / 'reference' / 'original_models'


def build(network, depth=None, primary_partition=None, secondary_partition=None,
          dataset=None, widen=None, num_classes=None):
    """(symbol, data shape) of ``network``, built through the registry."""
    family = networks.FAMILIES[network]
    dataset = dataset or ('imagenet' if family.dataset == 'imagenet' else 'cifar10')
    classes, kind = DATASETS[dataset]
    if kind != family.dataset:
        raise ValueError(f'{network} is a {family.dataset} network; --dataset {dataset} '
                         f'does not fit it')
    depth = DEFAULT_DEPTH[kind] if depth is None else depth
    extra = {} if widen is None else {'widen': widen}
    symbol = networks.get_symbol(network, num_classes or classes, depth, primary_partition,
                                 secondary_partition, **extra)
    return symbol, networks.DATA_SHAPES[kind]


def load(path):
    """A saved symbol (old or new JSON format); Reorder is registered by importing igc_mx.
    ModelFileError (a ValueError) names a missing or unreadable file."""
    return model_files.load_symbol(str(path))


def image_shape(text):
    """C,H,W of one image: three positive sizes."""
    shape = model_files.sizes(text)
    if shape is None or len(shape) != 3:
        raise argparse.ArgumentTypeError(f'expected three positive sizes C,H,W such as '
                                         f'3,224,224, got {text!r}')
    return shape


def arg_aux_shapes(symbol, data_shape):
    shape = (1,) + tuple(data_shape)
    args, _, aux = symbol.infer_shape(data=shape)
    return (dict(zip(symbol.list_arguments(), args, strict=True)),
            dict(zip(symbol.list_auxiliary_states(), aux, strict=True)))


def report(title, layers, per_layer=False):
    lines = [title]
    if per_layer:
        lines.append(f"  {'layer':<30} {'op':<15} {'params':>12} {'MACs':>15}")
        for layer in layers:
            if layer.params or layer.macs:
                lines.append(f'  {layer.name:<30} {layer.op:<15} {layer.params:>12,} '
                             f'{layer.macs:>15,}')
    lines.append(f"{'stage':<8} {'params':>13} {'MACs':>15}")
    for stage, (params, _aux, macs) in counting.totals(layers).items():
        lines.append(f'{stage:<8} {params:>13,} {macs:>15,}')
    params, aux, macs = counting.totals(layers)['total']
    lines.append(f'total: {params / 1e6:.4f}M parameters ({aux:,} BatchNorm moving '
                 f'statistics not counted), {macs / 1e9:.3f}G multiply-adds per image')
    return '\n'.join(lines)


def describe(network, depth, primary_partition, secondary_partition, widen, shape):
    """One line naming what ``build`` resolved (defaults made explicit)."""
    values = networks.resolve_arguments(network, 1, depth, primary_partition,  # any class count
                                        secondary_partition)
    fam, stem, stages = networks.layout(network, values['depth'], values['primary_partition'],
                                        values['secondary_partition'], widen)
    text = f"{network}: depth {values['depth']}, stem {stem}, widths {[s.width for s in stages]}"
    if fam.igc:
        text += (f', L per stage {[s.primary_partition for s in stages]}, '
                 f'M per stage {[s.width // s.primary_partition for s in stages]}')
    return text + f', input {"x".join(map(str, shape))}'


def params_of(layers, ops):
    return sum(layer.params for layer in layers if layer.op in ops)


def paper_table(reference_dir):
    """Markdown table of the five ImageNet rows: ours, published, paper.

    'conv only' and 'conv + fc' count our symbol's weights under two narrower rules
    (no BatchNorm gamma/beta; no classifier) to compare with the paper's #Params.
    """
    rows = ['| row | flags | params ours (M) | params published (M) | conv only (M)'
            ' | conv + fc (M) | paper #Params (M) | MACs ours (G) | MACs published (G)'
            ' | paper FLOPs (G) | names and shapes = published |',
            '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in networks.PAPER_ROWS:
        symbol, shape = build(row.network, 18, row.primary_partition, row.secondary_partition)
        ours = counting.profile(symbol, shape)
        flags = f'`--network {row.network} --primary-partition {row.primary_partition}'
        if row.secondary_partition is not None:
            flags += f' --secondary-partition {row.secondary_partition}'
        flags += '`'
        path = Path(reference_dir) / row.published
        if path.exists():
            published_symbol = load(path)
            published = counting.profile(published_symbol, shape)
            pub_params = f"{counting.totals(published)['total'][0] / 1e6:.3f}"
            pub_macs = f"{counting.totals(published)['total'][2] / 1e9:.2f}"
            same = 'yes' if (arg_aux_shapes(symbol, shape)
                             == arg_aux_shapes(published_symbol, shape)) else 'NO'
        else:
            pub_params = pub_macs = same = 'n/a'
        total = counting.totals(ours)['total']
        rows.append(f'| {row.label} | {flags} | {total[0] / 1e6:.3f} | {pub_params} | '
                    f"{params_of(ours, counting.CONV_OPS) / 1e6:.3f} | "
                    f"{params_of(ours, counting.CONV_OPS + ('FullyConnected',)) / 1e6:.3f} | "
                    f'{row.paper_params_m} | '
                    f'{total[2] / 1e9:.2f} | {pub_macs} | {row.paper_flops_g} | {same} |')
    return '\n'.join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('--network', choices=networks.list_networks())
    what.add_argument('--symbol-file', help='summarize a saved symbol JSON file')
    what.add_argument('--paper-table', action='store_true',
                      help='the five ImageNet rows of the paper, ours vs published')
    p.add_argument('--depth', type=int, help='default: 62 (CIFAR, as the original), 18')
    p.add_argument('--primary-partition', type=int, help='L')
    p.add_argument('--secondary-partition', type=int, default=None, help='M')
    p.add_argument('--widen', choices=sorted(networks.WIDEN_RULES), default=None,
                   help='resnet_igc_imgnet_d18 only: which partition doubles per stage '
                        '(default: secondary if --secondary-partition is given, else '
                        'primary with M=2)')
    p.add_argument('--dataset', choices=sorted(DATASETS), default=None,
                   help='sets the classes and input size (default: cifar10, or imagenet '
                        'for the ImageNet networks)')
    p.add_argument('--num-classes', type=int, default=None, help='override the dataset')
    p.add_argument('--data-shape', type=image_shape, default=(3, 224, 224),
                   help='C,H,W of one image for --symbol-file (default 3,224,224)')
    p.add_argument('--layers', action='store_true', help='also list every layer')
    p.add_argument('--save-json', metavar='PATH', help='write the built symbol to PATH')
    p.add_argument('--reference-dir', default=str(REFERENCE_DIR),
                   help='the published symbol files (for --paper-table; default '
                        f'{REFERENCE_DIR}, from the repository root)')
    args = p.parse_args(argv)

    if args.paper_table:
        print(paper_table(args.reference_dir))
        return 0
    inputs = (args.symbol_file,) if args.symbol_file else ()
    try:
        if args.save_json:
            check_target(args.save_json, inputs, '--save-json')
        if args.symbol_file:
            symbol = load(args.symbol_file)
            shape = args.data_shape
            title = f'{args.symbol_file}: input {"x".join(map(str, shape))}'
        else:
            symbol, shape = build(args.network, args.depth, args.primary_partition,
                                  args.secondary_partition, args.dataset, args.widen,
                                  args.num_classes)
            kind = networks.FAMILIES[args.network].dataset
            title = describe(args.network, args.depth or DEFAULT_DEPTH[kind],
                             args.primary_partition, args.secondary_partition, args.widen,
                             shape)
    except (ValueError, TargetError) as err:
        p.error(str(err))
    print(report(title, counting.profile(symbol, shape), args.layers))
    if args.save_json:
        try:
            with atomic_path(args.save_json, inputs, '--save-json') as tmp:
                symbol.save(tmp)
        except OSError as err:   # its folder is read-only or full
            sys.exit(f'{p.prog}: error: cannot write --save-json {args.save_json}: '
                     f'{err.strerror or err}')
        print(f'symbol written to {args.save_json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
