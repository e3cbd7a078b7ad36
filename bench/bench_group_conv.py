"""GroupConvolution on the CPU, forward and forward+backward, side by side:
our op, MXNet's Convolution(num_group) (oneDNN) and PyTorch's conv2d(groups),
at the IGC primary shapes. Each framework and thread count runs in its own
process (frameworks would share one OpenMP runtime, and MXNet fixes its thread
count at import); PyTorch with its allocator tuned.

    .venv/bin/python bench/bench_group_conv.py [--out bench/results] [--threads 1,2]
        [--torch-python PY] [--repeat 9]

Every time is the median of --repeats timed runs, each the mean of enough calls
to last --min-time seconds: the machine is shared, and the median is robust to
other processes' bursts. Writes group_conv.json and group_conv.md.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# (name, batch, channels, size, groups): 3x3, pad 1, stride 1, filters = channels.
SHAPES = [
    ('CIFAR L24M2 stage 1', 32, 48, 32, 24),
    ('CIFAR L24M2 stage 2', 32, 96, 16, 24),
    ('CIFAR L24M2 stage 3', 32, 192, 8, 24),
    ('ImageNet L16M16 stage 1', 8, 256, 56, 16),
]
TORCH_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '68719476736'}


def shape_geometry(batch, channels, size, groups):
    data = (batch, channels, size, size)
    weight = (channels, channels // groups, 3, 3)
    macs = batch * channels * size * size * (channels // groups) * 9
    return data, weight, macs


# ---- PyTorch worker (runs under the torch interpreter, never imports mxnet) ----

def torch_worker(threads, repeats, min_time):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    rows = []
    for name, batch, channels, size, groups in SHAPES:
        data_shape, weight_shape, _ = shape_geometry(batch, channels, size, groups)
        w = torch.randn(weight_shape, requires_grad=True)
        row = {'shape': name, 'forward_ms': float('inf'), 'fwd_bwd_ms': float('inf')}
        # PyTorch's faster memory format (channels_last is for these grouped convolutions)
        for memory_format in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(data_shape).to(memory_format=memory_format).requires_grad_()
            head = torch.randn(data_shape).to(memory_format=memory_format)

            def forward():
                with torch.no_grad():
                    F.conv2d(x, w, padding=1, groups=groups)

            def forward_backward():
                x.grad = w.grad = None
                F.conv2d(x, w, padding=1, groups=groups).backward(head)

            row['forward_ms'] = min(row['forward_ms'], 1e3 * common.call_seconds(
                forward, repeats, min_time))
            row['fwd_bwd_ms'] = min(row['fwd_bwd_ms'], 1e3 * common.call_seconds(
                forward_backward, repeats, min_time))
        rows.append(row)
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(),
                      'rows': rows}))


def run_worker(python, worker, threads, repeats, min_time, extra_env=None):
    env = {**os.environ, **(extra_env or {}), 'OMP_NUM_THREADS': str(threads)}
    result = subprocess.run([python, __file__, '--worker', worker, '--threads', str(threads),
                             '--repeat', str(repeats), '--min-time', str(min_time)],
                            env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'{worker} worker failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- MXNet (this process) ------------------------------------------------------

def mxnet_rows(repeats, min_time):
    import mxnet as mx

    import igc_mx
    from igc_mx import kernels

    # The raw op: the public wrapper puts an identity before leaf inputs for
    # grad_req='add' (see _ops.py), a copy that networks never pay.
    group_conv = mx.nd.GroupConvolution.raw
    rows = []
    for name, batch, channels, size, groups in SHAPES:
        data_shape, weight_shape, macs = shape_geometry(batch, channels, size, groups)
        x = mx.nd.random.normal(shape=data_shape)
        w = mx.nd.random.normal(shape=weight_shape)
        head = mx.nd.random.normal(shape=data_shape)
        x.attach_grad()
        w.attach_grad()
        params = dict(kernel=(3, 3), pad=(1, 1), num_filter=channels, num_group=groups)
        ops = {'ours': lambda a, b: group_conv(a, b, **params),
               'mxnet': lambda a, b: mx.nd.Convolution(a, b, no_bias=True, **params)}
        row = {'shape': name, 'data': data_shape, 'groups': groups, 'macs': macs}
        for label, op in ops.items():
            def forward():
                op(x, w).wait_to_read()

            def forward_backward():
                with mx.autograd.record():
                    y = op(x, w)
                y.backward(head)
                mx.nd.waitall()

            row[f'{label}_forward_ms'] = 1e3 * common.call_seconds(forward, repeats, min_time)
            row[f'{label}_fwd_bwd_ms'] = 1e3 * common.call_seconds(forward_backward, repeats,
                                                              min_time)
        rows.append(row)
    return rows, {'mxnet': mx.__version__, 'isa': kernels.cpu_isa(),
                  'igc_mx': igc_mx.__version__}


def machine_limits(repeats, min_time):
    """Measured here: copy bandwidth (read + write, 256 MiB) and a large float32
    GEMM's multiply-add rate, as the memory and arithmetic limits; the best run,
    not the median, since a limit is what the machine can do when left alone."""
    import mxnet as mx
    src = mx.nd.ones((64, 1024, 1024))
    dst = mx.nd.zeros_like(src)

    def copy():
        src.copyto(dst)
        dst.wait_to_read()

    copy_s = common.call_seconds(copy, repeats, min_time, best=True)
    a = mx.nd.random.normal(shape=(2048, 2048))
    b = mx.nd.random.normal(shape=(2048, 2048))
    gemm_s = common.call_seconds(lambda: mx.nd.dot(a, b).wait_to_read(), repeats, min_time,
                            best=True)
    return {'copy_gb_per_s': 2 * src.size * 4 / copy_s / 1e9,
            'gemm_gmac_per_s': 2048 ** 3 / gemm_s / 1e9}


def limit_ms(row, limits):
    """Lower bound for forward+backward: every tensor moved once (x, w, y forward;
    dy, x, w, dx, dw backward) at copy bandwidth, or 3x the multiply-adds at
    GEMM rate, whichever is larger."""
    n, c, h, w = row['data']
    activation = n * c * h * w * 4
    moved = 5 * activation  # y = x in size here
    return 1e3 * max(moved / (limits['copy_gb_per_s'] * 1e9),
                     3 * row['macs'] / (limits['gemm_gmac_per_s'] * 1e9))


def markdown(report):
    lines = [
        f"GroupConvolution, CPU ({report['cpu']}, MXNet {report['mxnet']}, PyTorch "
        f"{report['torch']}, kernel variant `{report['isa']}`). Times in ms, median of "
        f"{report['repeat']} runs.", '']
    for threads, run in report['runs'].items():
        lim = run['limits']
        lines += [
            f"**{threads} thread(s).** Limits measured in the same process (best run): "
            f"copy {lim['copy_gb_per_s']:.1f} GB/s, float32 GEMM "
            f"{lim['gemm_gmac_per_s']:.1f} GMAC/s.", '',
            '| shape (N, C, H=W, groups) | ours fwd | MXNet fwd | PyTorch fwd | ours fwd+bwd '
            '| MXNet fwd+bwd | PyTorch fwd+bwd | vs MXNet | vs PyTorch | limit | ours / limit |',
            '|---|---|---|---|---|---|---|---|---|---|---|']
        lines += table_rows(run['rows'])
        lines.append('')
    lines += ['"vs" columns: forward+backward speed-up of ours. "limit": the larger of '
              'moving x, y, dy, dx once each plus x again at copy bandwidth, and 3x the '
              'multiply-adds at GEMM rate.', '']
    return '\n'.join(lines)


def table_rows(rows):
    lines = []
    for r in rows:
        n, c, h, _ = r['data']
        lines.append(
            f"| {r['shape']} ({n}, {c}, {h}, {r['groups']}) | {r['ours_forward_ms']:.2f} "
            f"| {r['mxnet_forward_ms']:.2f} | {r['torch_forward_ms']:.2f} "
            f"| {r['ours_fwd_bwd_ms']:.2f} | {r['mxnet_fwd_bwd_ms']:.2f} "
            f"| {r['torch_fwd_bwd_ms']:.2f} | {r['speedup_vs_mxnet']:.1f}x "
            f"| {r['speedup_vs_torch']:.1f}x | {r['limit_ms']:.2f} "
            f"| {r['ours_fwd_bwd_ms'] / r['limit_ms']:.1f}x |")
    return lines


def mxnet_worker(repeats, min_time):
    rows, versions = mxnet_rows(repeats, min_time)
    print(json.dumps({'rows': rows, 'limits': machine_limits(repeats, min_time), **versions}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.set_defaults(repeat=9)
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    parser.add_argument('--min-time', type=float, default=0.2)
    parser.add_argument('--worker', choices=['torch', 'mxnet'], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == 'torch':
        return torch_worker(int(args.threads), args.repeat, args.min_time)
    if args.worker == 'mxnet':
        return mxnet_worker(args.repeat, args.min_time)

    if not args.torch_python:
        parser.error('--torch-python (or $IGC_TORCH_PYTHON) is needed: the comparison '
                     'is against PyTorch')
    runs, versions = {}, {}
    for threads in (int(t) for t in args.threads.split(',')):
        theirs = run_worker(args.torch_python, 'torch', threads, args.repeat, args.min_time,
                            TORCH_ENV)
        ours = run_worker(sys.executable, 'mxnet', threads, args.repeat, args.min_time)
        versions = {'torch': theirs['torch'], 'mxnet': ours['mxnet'], 'isa': ours['isa']}
        for row, other in zip(ours['rows'], theirs['rows'], strict=True):
            row['torch_forward_ms'] = other['forward_ms']
            row['torch_fwd_bwd_ms'] = other['fwd_bwd_ms']
            row['speedup_vs_mxnet'] = row['mxnet_fwd_bwd_ms'] / row['ours_fwd_bwd_ms']
            row['speedup_vs_torch'] = row['torch_fwd_bwd_ms'] / row['ours_fwd_bwd_ms']
            row['limit_ms'] = limit_ms(row, ours['limits'])
        runs[threads] = {'limits': ours['limits'], 'rows': ours['rows']}
    report = {**common.machine(), 'repeat': args.repeat, **versions, 'runs': runs,
              'command': f'.venv/bin/python bench/bench_group_conv.py --threads {args.threads}'}
    table = markdown(report)
    common.write_results(args.out, 'group_conv', report, table)
    print(table)


if __name__ == '__main__':
    sys.exit(main())
