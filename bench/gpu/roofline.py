"""The CUDA kernels' work at the benchmark shapes, without a GPU: bytes moved,
FLOPs, the time limits they imply on an H100/H200, and the grids the kernels
launch (read from the code itself: the emulated library records each launch
without running it). With nvcc, also each kernel's registers, shared memory and
spills for sm_90 (ptxas -v).

    python bench/gpu/roofline.py [--out bench/results/gpu_roofline.md]

The table goes into docs/gpu_kernels.md.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'python'))
from igc_mx import kernels  # noqa: E402
from igc_mx.atomic import atomic_path  # noqa: E402
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
        gx, gy, gz, bx, by, bz = map(int, dims.split())
        rows.append((name, gx * gy * gz, bx * by * bz))
    return rows


def limits(nbytes, flops):
    """(ms at copy bandwidth, ms at fp32 peak, the larger)."""
    memory, compute = nbytes / COPY_BYTES_PER_S * 1e3, flops / FP32_FLOPS_PER_S * 1e3
    return memory, compute, max(memory, compute)


def rows_for(lib, label, n, c, side, L, M, dtype):
    size = np.dtype(dtype).itemsize
    hw = side * side
    act = n * c * hw
    out = []

    def add(op, pass_name, nbytes, flops, grid):
        memory, compute, bound = limits(nbytes, flops)
        blocks = ', '.join(f'{name.split("<")[0].strip("(")} {b} x {t}' for name, b, t in grid)
        main = max(b for _, b, _ in grid)
        out.append((label, op, pass_name, nbytes / 1e6, flops / 1e9, memory, compute, bound,
                    blocks, main / SMS))

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
        grid = launches(lib, lambda: kernels.interleaved_conv(
            pass_name, x, w if pass_name != 'backward_weight' else y,
            y if pass_name != 'backward_weight' else w, L, M, device='cuda', lib=lib, **extra))
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
        target = wg if pass_name == 'backward_weight' else y
        grid = launches(lib, lambda: kernels.group_conv(
            pass_name, geometry, x, wg if pass_name != 'backward_weight' else y, target,
            dtype=dtype, device='cuda', lib=lib, **extra))
        add('GroupConvolution', pass_name, nbytes, 2 * act * cg * 9, grid)
    return out


def ptxas_report():
    """{kernel name: (registers, shared bytes, spill bytes)} of the float32 kernels for
    sm_90, or {} without nvcc."""
    nvcc = shutil.which('nvcc')
    if nvcc is None:
        return {}
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sorted((REPO / 'src' / 'operator').glob('*.cu')):
            result = subprocess.run(
                [nvcc, '-std=c++17', '-O3', '-arch=sm_90', '-Xptxas', '-v', '-c', str(source),
                 '-I', str(source.parent), '-o', str(Path(tmp) / 'k.o')],
                capture_output=True, text=True, check=True)
            name = None
            for line in result.stderr.splitlines():
                entry = re.search(r"entry function '(\S+)'", line)
                if entry:
                    name = entry.group(1)
                spills = re.search(r'(\d+) bytes spill stores', line)
                if spills and name:
                    spill = int(spills.group(1))
                used = re.search(r'Used (\d+) registers.*?(?:(\d+) bytes smem)?$', line)
                if used and name:
                    report[demangle(name)] = (int(used.group(1)), int(used.group(2) or 0), spill)
    return report


def demangle(symbol):
    filt = shutil.which('c++filt')
    if filt is None:
        return symbol
    text = subprocess.run([filt, symbol], capture_output=True, text=True).stdout.strip()
    text = text.replace('(anonymous namespace)::', '').replace('void ', '', 1)
    return text.split('>(')[0] + '>' if '>(' in text else text.split('(')[0]


def markdown(rows, dtype, registers):
    lines = [f'Work per pass, {dtype}, one H100/H200 (copy {COPY_BYTES_PER_S / 1e12:.1f} TB/s, '
             f'fp32 {FP32_FLOPS_PER_S / 1e12:.0f} TFLOP/s on CUDA cores; the kernels do not use '
             'tensor cores). "bytes" counts each tensor read or written once, plus the '
             'weight gradients\' partial sums; the limit is the larger of the two times. '
             f'Grids: kernel, blocks x threads per block, as launched; "blocks / SM": the '
             f'largest grid over {SMS} multiprocessors.', '',
             '| shape | op | pass | MB | GFLOP | memory ms | fp32 ms | limit ms | grids | '
             'blocks / SM |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {r[5]:.3f} | '
                     f'{r[6]:.3f} | {r[7]:.3f} | {r[8]} | {r[9]:.1f} |')
    if registers:
        lines += ['', 'Registers, static shared memory and spills per kernel (float32, '
                  'sm_90, `nvcc -Xptxas -v`):', '',
                  '| kernel | registers | shared bytes | spill bytes |', '|---|---|---|---|']
        for name, (regs, smem, spill) in sorted(registers.items()):
            if 'float' in name or 'uint' in name:
                lines.append(f'| `{name}` | {regs} | {smem} | {spill} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'bench' / 'results' / 'gpu_roofline.md')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16'])
    parser.add_argument('--no-ptxas', action='store_true', help='skip the register report')
    args = parser.parse_args(argv)
    lib = kernels.load_emulated()
    rows = [r for stage in STAGES for r in rows_for(lib, *stage, args.dtype)]
    text = markdown(rows, args.dtype, {} if args.no_ptxas else ptxas_report())
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text)
    print(text)


if __name__ == '__main__':
    main()
