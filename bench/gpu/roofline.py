"""The CUDA kernels' work at the benchmark shapes, without a GPU: bytes moved,
FLOPs, the time limits they imply on an H100/H200, and the grids the kernels
launch (read from the code itself: the emulated library records each launch
without running it). With nvcc, also how many blocks of each grid's main kernel
reside on one sm_90 multiprocessor at once (resources.py) and so how many waves
the grid takes.

    python bench/gpu/roofline.py [--out bench/results/gpu_roofline.md]

The table goes into docs/gpu_kernels.md. Nothing here is measured.
"""
import argparse
import functools
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'python'))
from igc_mx import kernels  # noqa: E402
from igc_mx.atomic import atomic_path  # noqa: E402
import resources  # noqa: E402
from shapes import STAGES  # noqa: E402
# The limits of an H100/H200 SXM: device-to-device copy, fp32 on CUDA cores.
COPY_BYTES_PER_S = 4.3e12
FP32_FLOPS_PER_S = 60e12
SMS = 132
PASSES = ('forward', 'backward_data', 'backward_weight')


class Fake:
    """Stands in for an array in plan-only mode: a shape, a dtype, and an aligned
    pointer of its own that is never read."""
    made = 0

    def __init__(self, shape, dtype='float32'):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        Fake.made += 1
        self.ctypes = type('Pointer', (), {'data': Fake.made << 32})()


def launches(lib, call):
    lib.igc_emu_reset()
    lib.igc_emu_plan_only(1)
    try:
        call()
    finally:
        text = lib.igc_emu_launches().decode()
        lib.igc_emu_reset()
    rows = []
    for line in text.splitlines():
        name, dims = line.split('\t')
        gx, gy, gz, bx, by, bz, _ = map(int, dims.split())
        rows.append((name, gx * gy * gz, bx * by * bz))
    return rows


def limits(nbytes, flops):
    """(ms at copy bandwidth, ms at fp32 peak, the larger)."""
    memory, compute = nbytes / COPY_BYTES_PER_S * 1e3, flops / FP32_FLOPS_PER_S * 1e3
    return memory, compute, max(memory, compute)


#: the source of each op's kernels, as resources.py names them
SOURCE = {'Reorder': 'reorder_cuda.cu', 'InterleavedGroupConv': 'igc_conv_cuda.cu',
          'GroupConvolution': 'group_conv_cuda.cu'}
CTYPE = {'float32': 'float', 'float16': '__half'}


def resident(residency, op, kernel, dtype):
    """The fewest blocks of any instantiation of `kernel` (a launch's name) for
    `dtype` that one sm_90 multiprocessor holds, or None without the compile."""
    base = kernel.strip('()').split('<')[0].replace('igc::cuda::', '')
    source = 'cuda_common.cuh' if base == 'sum_chunks_kernel' else SOURCE[op]
    counts = [blocks for name, blocks in residency.items()
              if name.startswith(f'{source}: {base}<')
              and (op == 'Reorder' or f'<{CTYPE[dtype]}' in name)]
    return min(counts) if counts else None


def rows_for(lib, label, n, c, side, L, M, dtype, residency):
    size = np.dtype(dtype).itemsize
    hw = side * side
    act = n * c * hw
    out = []

    def add(op, pass_name, nbytes, flops, grid):
        memory, compute, bound = limits(nbytes, flops)
        blocks = ', '.join(f'{name.split("<")[0].strip("(")} {b} x {t}' for name, b, t in grid)
        main, launched, _ = max(grid, key=lambda g: g[1])
        fit = resident(residency, op, main, dtype)
        out.append((label, op, pass_name, nbytes / 1e6, flops / 1e9, memory, compute, bound,
                    blocks, fit, launched / (SMS * fit) if fit else None))

    x, y = Fake((n, c, side, side), dtype), Fake((n, c, side, side), dtype)
    grid = launches(lib, lambda: kernels.reorder(x, y, L, device='cuda', lib=lib))
    add('Reorder', 'forward', 2 * act * size, 0, grid)

    # InterleavedGroupConv: K = C/M channels per secondary group.
    K = c // M
    w = Fake((c, K), dtype)
    for pass_name in PASSES:
        extra = {}
        nbytes = (2 * act + c * K) * size
        if pass_name == 'backward_weight':
            space = kernels.interleaved_conv_workspace(x.shape, L, M, dtype, lib=lib)
            extra = dict(workspace=Fake((max(space, 1),), 'uint8'))
            nbytes += 2 * space
        b, result = (y, w) if pass_name == 'backward_weight' else (w, y)
        grid = launches(lib, functools.partial(kernels.interleaved_conv, pass_name, x, b, result,
                                               L, M, device='cuda', lib=lib, **extra))
        add('InterleavedGroupConv', pass_name, nbytes, 2 * act * K, grid)

    # GroupConvolution: the primary 3x3 conv, L groups of C/L channels.
    cg = c // L
    geometry = kernels.ConvGeometry(n, c, side, side, c, L, 3, 3, 1, 1, 1, 1)
    wg = Fake((c, cg, 3, 3), dtype)
    for pass_name in PASSES:
        extra = {}
        nbytes = (2 * act + c * cg * 9) * size
        if pass_name == 'backward_weight':
            space = kernels.group_conv_workspace(geometry, dtype, lib=lib)
            extra = dict(workspace=Fake((max(space, 1),), 'uint8'))
            nbytes += 2 * space
        b, result = (y, wg) if pass_name == 'backward_weight' else (wg, y)
        grid = launches(lib, functools.partial(kernels.group_conv, pass_name, geometry, x, b,
                                               result, dtype=dtype, device='cuda', lib=lib,
                                               **extra))
        add('GroupConvolution', pass_name, nbytes, 2 * act * cg * 9, grid)
    return out


def residency_sm90():
    """{resources.py kernel name: resident blocks per sm_90 multiprocessor}, or {}
    without nvcc."""
    nvcc = resources.find_nvcc()
    if nvcc is None:
        return {}
    with tempfile.TemporaryDirectory() as keep:
        kernels = resources.from_compile(resources.compile_sources(nvcc, keep), keep)
    return {k.name: resources.resident_blocks(k)[0] for k in kernels if k.arch == 90}


def number(value, digits):
    return '–' if value is None else f'{value:.{digits}f}'


def markdown(rows, dtype):
    lines = [f'Work per pass, {dtype}, one H100/H200 (copy {COPY_BYTES_PER_S / 1e12:.1f} TB/s, '
             f'fp32 {FP32_FLOPS_PER_S / 1e12:.0f} TFLOP/s on CUDA cores; the kernels do not use '
             'tensor cores). "bytes" counts each tensor read or written once, plus the '
             'weight gradients\' partial sums; the limit is the larger of the two times. '
             'Grids: kernel, blocks x threads per block, as launched. "resident / SM": how '
             'many blocks of the largest grid\'s kernel one sm_90 multiprocessor holds at '
             'once (the fewest over its instantiations for the dtype, from the compiler\'s '
             'registers and shared memory: resources.py); "waves": that grid\'s blocks over '
             f'{SMS} multiprocessors times that many.', '',
             '| shape | op | pass | MB | GFLOP | memory ms | fp32 ms | limit ms | grids | '
             'resident / SM | waves |', '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {r[5]:.3f} | '
                     f'{r[6]:.3f} | {r[7]:.3f} | {r[8]} | {number(r[9], 0)} | '
                     f'{number(r[10], 1)} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'bench' / 'results' / 'gpu_roofline.md')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16'])
    parser.add_argument('--no-nvcc', action='store_true',
                        help='skip the compile: no resident blocks or waves')
    args = parser.parse_args(argv)
    lib = kernels.load_emulated()
    residency = {} if args.no_nvcc else residency_sm90()
    rows = [r for stage in STAGES for r in rows_for(lib, *stage, args.dtype, residency)]
    text = markdown(rows, args.dtype)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text)
    print(text)


if __name__ == '__main__':
    main()
