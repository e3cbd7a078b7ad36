"""Reorder on the CPU, side by side in one process: our kernel against a plain
memory copy of the same bytes (the limit) and against MXNet's
reshape->transpose->reshape (what IGCV3 and GluonCV do).

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_reorder.py [--out bench/results]

Writes reorder_cpu.json and reorder_cpu.md (a table for the README).
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import time
from pathlib import Path

import mxnet as mx
import numpy as np

import igc_mx
from igc_mx import kernels
from igc_mx.atomic import atomic_path

# (name, shape, branch_factor): IGC feature maps at batch 64 (CIFAR) / 32 (ImageNet).
SHAPES = [
    ('CIFAR L24M2 48x32x32', (64, 48, 32, 32), 24),
    ('CIFAR L24M2 192x8x8', (64, 192, 8, 8), 24),
    ('ImageNet L16M16 256x56x56', (32, 256, 56, 56), 16),
    ('ImageNet L100M2 1600x7x7', (32, 1600, 7, 7), 100),
]


def best_seconds(fn, min_time=0.3, repeats=5):
    """Best of `repeats` means, each over enough calls to last `min_time`."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        fn()
        calls += 1
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def set_omp_threads(n):
    ctypes.CDLL(ctypes.util.find_library('gomp')).omp_set_num_threads(n)


def transpose_shuffle(x, g):
    return mx.nd.reshape(mx.nd.transpose(mx.nd.reshape(x, shape=(0, -4, g, -1, -2)),
                                         axes=(0, 2, 1, 3, 4)), shape=(0, -3, -2))


def forward_backward(op, x, head):
    with mx.autograd.record():
        y = op(x)
    y.backward(head)
    x.grad.wait_to_read()


def bench_shape(name, shape, g, threads):
    src = np.random.rand(*shape).astype(np.float32)
    dst = np.empty_like(src)
    moved = 2 * src.nbytes  # read + write
    copy_s = best_seconds(lambda: np.copyto(dst, src))
    set_omp_threads(1)
    kernel_1t = best_seconds(lambda: kernels.reorder_cpu(src, dst, g))
    set_omp_threads(threads)
    kernel_s = best_seconds(lambda: kernels.reorder_cpu(src, dst, g))

    x = mx.nd.array(src)
    x.attach_grad()
    head = mx.nd.array(np.random.rand(*shape).astype(np.float32))
    ours = best_seconds(lambda: forward_backward(
        lambda t: mx.nd.Reorder(t, branch_factor=g), x, head))
    transpose = best_seconds(lambda: forward_backward(
        lambda t: transpose_shuffle(t, g), x, head))
    return {
        'case': name, 'shape': list(shape), 'branch_factor': g, 'mib': src.nbytes / 2**20,
        'copy_gbps': moved / copy_s / 1e9,
        'kernel_1thread_gbps': moved / kernel_1t / 1e9,
        f'kernel_{threads}threads_gbps': moved / kernel_s / 1e9,
        'kernel_vs_copy': copy_s / kernel_s,
        'mx_reorder_fwd_bwd_ms': ours * 1e3,
        'mx_transpose_fwd_bwd_ms': transpose * 1e3,
        'reorder_speedup_vs_transpose': transpose / ours,
    }


def markdown(rows, threads):
    head = ('| case | MiB | copy GB/s | kernel 1 thr GB/s | kernel %d thr GB/s | kernel / copy '
            '| mx.nd.Reorder fwd+bwd ms | transpose fwd+bwd ms | speed-up |' % threads)
    lines = [head, '|' + '---|' * 9]
    for r in rows:
        lines.append(f"| {r['case']} | {r['mib']:.1f} | {r['copy_gbps']:.1f} | "
                     f"{r['kernel_1thread_gbps']:.1f} | {r[f'kernel_{threads}threads_gbps']:.1f} | "
                     f"{r['kernel_vs_copy']:.2f}x | {r['mx_reorder_fwd_bwd_ms']:.2f} | "
                     f"{r['mx_transpose_fwd_bwd_ms']:.2f} | "
                     f"{r['reorder_speedup_vs_transpose']:.2f}x |")
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('bench/results'))
    args = parser.parse_args()
    threads = int(os.environ.get('OMP_NUM_THREADS', os.cpu_count()))
    rows = []
    for case in SHAPES:
        rows.append(bench_shape(*case, threads=threads))
        print(json.dumps(rows[-1]))
    report = {'machine': platform.processor() or platform.machine(), 'cpus': os.cpu_count(),
              'omp_threads': threads, 'mxnet': mx.__version__,
              'library': igc_mx.build_info()['path'], 'results': rows}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / 'reorder_cpu.json') as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    with atomic_path(args.out / 'reorder_cpu.md') as tmp:
        Path(tmp).write_text(markdown(rows, threads))
    print(markdown(rows, threads))


if __name__ == '__main__':
    main()
