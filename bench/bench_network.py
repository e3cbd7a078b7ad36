"""Whole-network training speed on the CPU (images/s: forward, backward, SGD update),
side by side in one run, for the same network (same parameters) built five ways:

  default    igc_mx.networks.get_symbol(...): InterleavedGroupConv units, and
             GroupConvolution for primary convs with <= 16 filters per group ('auto')
  fused      InterleavedGroupConv units, MXNet's Convolution for the primary convs
  unfused    the original graph: Convolution -> Reorder -> 1x1 conv -> Reorder
  transpose  the unfused net with each Reorder as reshape->transpose->reshape
             (what IGCV3 and GluonCV do)
  torch      the unfused symbol rebuilt layer by layer in PyTorch (channel_shuffle), in
             its faster memory format (contiguous or channels_last),
             same shapes, SGD with momentum, cross-entropy, allocator tuned

    OMP_NUM_THREADS=2 python bench/bench_network.py [--repeat 3] [--torch-python PY]

Writes bench/results/network_cpu.{json,md}.
"""
import argparse
import contextlib
import json
import sys
from pathlib import Path

import mxnet as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from igc_mx import networks  # noqa: E402

import common  # noqa: E402

# (label, network, get_symbol args, batch, image shape, classes). The ImageNet net ends
# in a 7x7 average pooling, so it needs 224x224 inputs; a small batch keeps it short.
CASES = [
    ('resnet_igc CIFAR L24M2 depth 20, batch 32', 'resnet_igc', (10, 20, 24, 2), 32,
     (3, 32, 32), 10),
    ('resnet_igc_imgnet_d18 L16M16, batch 8, 224x224', 'resnet_igc_imgnet_d18',
     (1000, 18, 16, 16), 8, (3, 224, 224), 1000),
]
STEPS = 2   # training steps per timed run


def _transpose_reorder(data, branch_factor, name=None, **_):
    data = mx.sym.reshape(data, shape=(0, -4, branch_factor, -1, -2))
    data = mx.sym.transpose(data, axes=(0, 2, 1, 3, 4))
    return mx.sym.reshape(data, shape=(0, -3, -2), name=name)


@contextlib.contextmanager
def reorder_as_transpose():
    """Build networks with MXNet's transpose in place of Reorder (bench only)."""
    original = mx.sym.Reorder
    mx.sym.Reorder = _transpose_reorder
    try:
        yield
    finally:
        mx.sym.Reorder = original


#: variant -> get_symbol keyword arguments
VARIANTS = {'default': {},
            'fused': {'group_conv': False},
            'unfused': {'fused': False, 'group_conv': False}}


def symbol(network, args, variant):
    if variant == 'transpose':
        with reorder_as_transpose():
            return symbol(network, args, 'unfused')
    return networks.get_symbol(network, *args, **VARIANTS[variant])


def training_step(sym, batch, image, classes):
    """A function running STEPS training steps of `sym` on one fixed random batch."""
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=[('data', (batch, *image))],
             label_shapes=[('softmax_label', (batch,))])
    mod.init_params(mx.init.Xavier(magnitude=2))
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.01,
                                                          'momentum': 0.9, 'wd': 1e-4})
    rng = np.random.RandomState(0)
    data = mx.io.DataBatch([mx.nd.array(rng.randn(batch, *image))],
                           [mx.nd.array(rng.randint(0, classes, batch))])

    def steps():
        for _ in range(STEPS):
            mod.forward_backward(data)
            mod.update()
        mx.nd.waitall()
    return steps


def bench_case(label, network, args, batch, image, classes, repeat, torch_python):
    row = {'case': label, 'network': network, 'args': list(args), 'batch': batch,
           'image': list(image)}
    variants = tuple(VARIANTS) + ('transpose',)
    ms = common.side_by_side({v: training_step(symbol(network, args, v), batch, image, classes)
                              for v in variants}, repeat, min_time=0)
    for variant in variants:
        row[f'{variant}_img_s'] = batch * STEPS / (ms[variant] / 1e3)
    unfused = symbol(network, args, 'unfused')
    arg_shapes, _, _ = unfused.infer_shape(data=(batch, *image))
    torch = common.run_torch(torch_python, {
        'kind': 'network', 'graph': json.loads(unfused.tojson()),
        'arg_shapes': dict(zip(unfused.list_arguments(), arg_shapes, strict=True)),
        'data_shape': list(image), 'batch': batch, 'num_classes': classes,
        'steps': STEPS, 'repeat': repeat})
    # PyTorch's best layout (bench/torch_side.py times both)
    row['torch_img_s'], row['torch_memory_format'] = (
        common.best_format(torch['result']) if torch else (None, None))
    for variant in ('default', 'fused'):
        row[f'{variant}_vs_unfused'] = row[f'{variant}_img_s'] / row['unfused_img_s']
    row['default_vs_transpose'] = row['default_img_s'] / row['transpose_img_s']
    row['default_vs_torch'] = common.ratio(row['default_img_s'], row['torch_img_s'])
    return row, torch and torch['torch']


def markdown(rows):
    lines = ['| training (CPU) | default img/s | fused img/s | unfused img/s | transpose img/s '
             '| torch img/s | default vs unfused | fused vs unfused | default vs transpose '
             '| default vs torch |',
             '|' + '---|' * 10]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['default_img_s']:.1f} | {r['fused_img_s']:.1f} | "
            f"{r['unfused_img_s']:.1f} | {r['transpose_img_s']:.1f} | "
            f"{common.fmt(r['torch_img_s'], '.1f')} | **{r['default_vs_unfused']:.2f}x** | "
            f"{r['fused_vs_unfused']:.2f}x | {r['default_vs_transpose']:.2f}x | "
            f"**{common.fmt(r['default_vs_torch'], suffix='x')}** |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.set_defaults(repeat=3)
    args = parser.parse_args(argv)
    rows, torch_version = [], None
    for case in CASES:
        row, torch_version = bench_case(*case, repeat=args.repeat,
                                        torch_python=args.torch_python)
        rows.append(row)
    report = {**common.machine(), 'mxnet': mx.__version__, 'torch': torch_version,
              'repeat': args.repeat, 'steps_per_run': STEPS, 'results': rows}
    common.write_results(args.out, 'network_cpu', report, markdown(rows))
    return report


if __name__ == '__main__':
    main()
