"""Reorder on the CPU: our kernel against a plain memory copy of the same bytes (the
limit), MXNet's reshape->transpose->reshape (what IGCV3 and GluonCV do) and
torch.nn.functional.channel_shuffle, side by side in one run.

    OMP_NUM_THREADS=2 python bench/bench_reorder.py [--repeat 5] [--torch-python PY]

Writes bench/results/reorder_cpu.{json,md}. GB/s count bytes read plus written.
"""
import argparse
import sys
from pathlib import Path

import mxnet as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import igc_mx  # noqa: E402
from igc_mx import kernels  # noqa: E402

import common  # noqa: E402

# (name, shape, branch_factor): IGC feature maps at batch 64 (CIFAR) / 32 (ImageNet).
SHAPES = [
    ('CIFAR L24M2 48x32x32', (64, 48, 32, 32), 24),
    ('CIFAR L24M2 192x8x8', (64, 192, 8, 8), 24),
    ('ImageNet L16M16 256x56x56', (32, 256, 56, 56), 16),
    ('ImageNet L100M2 1600x7x7', (32, 1600, 7, 7), 100),
]


def transpose_shuffle(x, g):
    return mx.nd.reshape(mx.nd.transpose(mx.nd.reshape(x, shape=(0, -4, g, -1, -2)),
                                         axes=(0, 2, 1, 3, 4)), shape=(0, -3, -2))


def forward_backward(op, x, head):
    with mx.autograd.record():
        y = op(x)
    y.backward(head)
    x.grad.wait_to_read()


def bench_shape(name, shape, g, repeat):
    src = np.random.rand(*shape).astype(np.float32)
    dst = np.empty_like(src)
    moved = 2 * src.nbytes  # one pass: read + write
    x = mx.nd.array(src)
    x.attach_grad()
    head = mx.nd.array(np.random.rand(*shape).astype(np.float32))
    # The raw op: the wrapper's identity (for grad_req='add' on leaves) would add two
    # copies that a Reorder inside a network never has.
    reorder = mx.nd.Reorder.raw
    ms = common.side_by_side({
        'copy': lambda: np.copyto(dst, src),
        'kernel': lambda: kernels.reorder(src, dst, g),
        'ours': lambda: forward_backward(lambda t: reorder(t, branch_factor=g), x, head),
        'transpose': lambda: forward_backward(lambda t: transpose_shuffle(t, g), x, head),
    }, repeat)
    copy_ms, kernel_ms, ours, transpose = ms['copy'], ms['kernel'], ms['ours'], ms['transpose']
    return {
        'case': name, 'shape': list(shape), 'branch_factor': g, 'mib': src.nbytes / 2**20,
        'copy_gbps': moved / copy_ms / 1e6,
        'kernel_gbps': moved / kernel_ms / 1e6,
        'kernel_vs_copy': copy_ms / kernel_ms,
        'reorder_fwd_bwd_ms': ours, 'reorder_fwd_bwd_gbps': 2 * moved / ours / 1e6,
        'transpose_fwd_bwd_ms': transpose,
        'speedup_vs_transpose': transpose / ours,
    }


def markdown(rows):
    lines = ['| case | MiB | copy GB/s | Reorder kernel GB/s | kernel / copy '
             '| Reorder fwd+bwd ms | MXNet transpose fwd+bwd ms | torch channel_shuffle '
             'fwd+bwd ms | vs transpose | vs torch |',
             '|' + '---|' * 10]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['mib']:.1f} | {r['copy_gbps']:.1f} | {r['kernel_gbps']:.1f} | "
            f"{r['kernel_vs_copy']:.2f}x | {r['reorder_fwd_bwd_ms']:.2f} | "
            f"{r['transpose_fwd_bwd_ms']:.2f} | {common.fmt(r['torch_fwd_bwd_ms'])} | "
            f"{r['speedup_vs_transpose']:.2f}x | {common.fmt(r['speedup_vs_torch'], suffix='x')} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    args = parser.parse_args(argv)
    rows = [bench_shape(*case, repeat=args.repeat) for case in SHAPES]
    torch = common.run_torch(args.torch_python, {
        'kind': 'shuffle', 'repeat': args.repeat,
        'cases': [{'shape': shape, 'branch_factor': g} for _, shape, g in SHAPES]})
    for i, row in enumerate(rows):
        row['torch_fwd_bwd_ms'] = torch['result'][i] if torch else None
        row['speedup_vs_torch'] = common.ratio(row['torch_fwd_bwd_ms'],
                                               row['reorder_fwd_bwd_ms'])
    report = {**common.machine(), 'mxnet': mx.__version__,
              'torch': torch and torch['torch'], 'repeat': args.repeat,
              'library': igc_mx.build_info()['path'], 'results': rows}
    common.write_results(args.out, 'reorder_cpu', report, markdown(rows))
    return report


if __name__ == '__main__':
    main()
