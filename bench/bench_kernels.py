"""CPU kernel passes of one or more builds of libigc_kernels.so, side by side: for
comparing a kernel change against the build before it, without MXNet in the timing.

    OMP_NUM_THREADS=1 python bench/bench_kernels.py OLD/libigc_kernels.so NEW/libigc_kernels.so

Each pass of each shape (GroupConvolution at the IGC shapes, then the interleaved 1x1
conv) is called on every build in turn, best of --repeat rounds, so that a change in
the machine's load hits every build alike; prints ms per call, build by build, and
fails if the builds' results disagree. A kernels-only build:
cmake -G Ninja -DIGC_KERNELS_ONLY=ON <repo> && ninja.
"""
import argparse
import ctypes
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'python'))
# igc_mx imports MXNet, whose OpenBLAS the interleaved conv's BLAS path finds at run time.
from igc_mx.kernels import ConvGeometry  # noqa: E402

# (name, batch, channels, size, groups, stride): 3x3 GroupConvolution, pad 1.
GROUP_CONV = [('CIFAR s1', 32, 48, 32, 24, 1), ('CIFAR s2', 32, 96, 16, 24, 1),
              ('CIFAR s3', 32, 192, 8, 24, 1), ('CIFAR s2 stride 2', 32, 96, 32, 24, 2),
              ('L16M16 s1', 8, 256, 56, 16, 1), ('L16M16 s3', 8, 1024, 14, 16, 1)]
# (name, batch, channels, size, L, M): InterleavedGroupConv.
INTERLEAVED = [('CIFAR s3 L24M8', 32, 192, 8, 24, 8), ('CIFAR s2 L24M4', 32, 96, 16, 24, 4),
               ('L16M16 s1', 8, 256, 56, 16, 16), ('L16M16 s4', 8, 2048, 7, 16, 128)]
PASSES = ('forward', 'backward_data', 'backward_weight')


def load(path):
    lib = ctypes.CDLL(str(path))
    for name in PASSES:
        fn = getattr(lib, f'igc_group_conv_{name}_cpu')
        fn.argtypes = [ctypes.POINTER(ConvGeometry)] + [ctypes.c_void_p] * 3 + [ctypes.c_int]
        fn = getattr(lib, f'igc_interleaved_conv_{name}_cpu')
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 5 + [ctypes.c_int]
    return lib


def pass_calls(lib, symbol, operands, invoke):
    """(pass, result array, call) for each pass: `operands` maps a pass to (a, b, result
    shape); invoke(fn, a, b, result) calls the kernel `symbol % pass` of `lib`."""
    for name, (a, b, shape) in operands.items():
        result = np.empty(shape, np.float32)
        fn = getattr(lib, symbol % name)
        yield name, result, (lambda fn=fn, a=a, b=b, r=result: invoke(fn, a, b, r))


def group_conv_calls(lib, case, rng):
    _, n, c, size, groups, stride = case
    out = (size - 1) // stride + 1
    geometry = ConvGeometry(n, c, size, size, c, groups, 3, 3, stride, stride, 1, 1)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((c, c // groups, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((n, c, out, out), dtype=np.float32)
    operands = {'forward': (x, w, dy.shape), 'backward_data': (dy, w, x.shape),
                'backward_weight': (dy, x, w.shape)}
    return pass_calls(lib, 'igc_group_conv_%s_cpu', operands, lambda fn, a, b, r: fn(
        ctypes.byref(geometry), a.ctypes.data, b.ctypes.data, r.ctypes.data, 0))


def interleaved_calls(lib, case, rng):
    _, n, c, size, L, M = case
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    dy = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((c, c // M, 1, 1), dtype=np.float32)
    operands = {'forward': (x, w, x.shape), 'backward_data': (dy, w, x.shape),
                'backward_weight': (dy, x, w.shape)}
    return pass_calls(lib, 'igc_interleaved_conv_%s_cpu', operands, lambda fn, a, b, r: fn(
        a.ctypes.data, b.ctypes.data, r.ctypes.data, n, c, size * size, L, M, 0))


def compare(kind, cases, libs, calls_of, repeat):
    ok = True
    for case in cases:
        # The same random operands for every build: one generator seed per case.
        per_lib = [list(calls_of(lib, case, np.random.default_rng(0))) for lib in libs]
        cells = []
        for p, name in enumerate(PASSES):
            calls = [entries[p][2] for entries in per_lib]
            for call in calls:
                if call() != 0:
                    raise SystemExit(f'{kind} {case[0]} {name}: kernel status != 0')
            # Enough calls per round to last ~20 ms on the first build.
            start = time.perf_counter()
            calls[0]()
            count = max(1, int(0.02 / max(time.perf_counter() - start, 1e-6)))
            best = [float('inf')] * len(calls)
            for _ in range(repeat):
                for i, call in enumerate(calls):
                    start = time.perf_counter()
                    for _ in range(count):
                        call()
                    best[i] = min(best[i], (time.perf_counter() - start) / count)
            reference = per_lib[0][p][1]
            scale = max(float(np.abs(reference).max()), 1e-30)
            for entries in per_lib[1:]:
                error = float(np.abs(entries[p][1] - reference).max()) / scale
                if error > 1e-5:
                    ok = False
                    cells.append(f'MISMATCH {error:.1e}')
            cells.append(f"{name} " + ' / '.join(f'{1e3 * b:.2f}' for b in best))
        print(f'{kind:12} {case[0]:18} ' + ' | '.join(cells), flush=True)
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('libraries', nargs='+', type=Path, help='libigc_kernels.so builds')
    parser.add_argument('--repeat', type=int, default=9, help='rounds; the best one counts')
    args = parser.parse_args(argv)
    for path in args.libraries:
        if not path.is_file():
            parser.error(f'{path}: not a file (expected a libigc_kernels.so build)')
    libs = [load(path) for path in args.libraries]
    print('ms per call, build by build in the order given:', flush=True)
    ok = compare('GroupConv', GROUP_CONV, libs, group_conv_calls, args.repeat)
    ok = compare('Interleaved', INTERLEAVED, libs, interleaved_calls, args.repeat) and ok
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
