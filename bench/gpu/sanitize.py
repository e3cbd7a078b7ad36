"""Every CUDA kernel of the kernels-only library once, on small shapes, in float32,
float64 and float16: the run that scripts/gpu_check.sh puts under compute-sanitizer
(memcheck, racecheck, synccheck). Device memory comes from the CUDA driver
(libcuda.so.1) through ctypes: no PyTorch, NumPy or MXNet needed.

    python3 bench/gpu/sanitize.py --library build/gpu-check/lib/libigc_kernels.so

    python3 bench/gpu/sanitize.py --library .../libigc_kernels_emulated.so --emulated

runs the same on the CPU in host memory, where the emulated kernels check every
access against the arrays of each call and report races themselves. Exits 1 at the
first call that fails, with its error.
"""
import argparse
import ctypes
import functools
import random
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'python'))
from igc_mx import kernels  # noqa: E402

DTYPES = {'float32': ('f', 4), 'float64': ('d', 8), 'float16': ('e', 2)}
WORKSPACE = 'uint8'  # filled with 0xFF bytes, never read before it is written
# Shapes that launch every kernel: each copy width of Reorder; tiles of 16, 32 and
# 64 rows and a weight gradient in chunks for InterleavedGroupConv; 1, 2, 4 and 8
# filters or channels per thread, strides, padding and a weight gradient in chunks
# for GroupConvolution.
REORDER = [((2, 12, 5, 7), 3), ((1, 64, 4, 4), 8), ((3, 6, 1), 2), ((2, 10, 2), 2)]
IGC = [(1, 32, 5, 7, 4, 8), (2, 48, 8, 8, 24, 2), (1, 200, 3, 3, 100, 2), (3, 32, 30, 31, 4, 4)]
GROUP_CONV = [(2, 8, 10, 9, 8, 8, 3, 4, 1), (2, 48, 8, 8, 48, 24, 3, 1, 1),
              (1, 16, 6, 6, 16, 4, 3, 1, 1), (1, 16, 9, 7, 32, 2, 3, 2, 1),
              (2, 16, 11, 10, 16, 2, 5, 1, 2), (2, 16, 12, 12, 16, 2, 3, 1, 1)]


class Array:
    """What igc_mx.kernels needs of an array: shape, dtype name, size and pointer."""

    def __init__(self, memory, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype
        count = 1
        for d in self.shape:
            count *= d
        self.count, self.size = count, 1 if dtype == WORKSPACE else DTYPES[dtype][1]
        self.pointer = memory.allocate(max(count * self.size, 1))
        memory.fill(self)

    def data_ptr(self):
        return self.pointer

    def numel(self):
        return self.count

    def element_size(self):
        return self.size


def random_bytes(array, rng):
    if array.dtype == WORKSPACE:
        return b'\xff' * array.count
    code = DTYPES[array.dtype][0]
    values = [rng.uniform(-1, 1) for _ in range(array.count)]
    return struct.pack(f'<{array.count}{code}', *values)


class Driver:
    """Device memory of GPU 0 through the driver API, in its primary context (the
    one the CUDA runtime inside the kernels library uses)."""

    def __init__(self):
        self.cuda = ctypes.CDLL('libcuda.so.1')
        self.rng = random.Random(0)
        device, self.context = ctypes.c_int(), ctypes.c_void_p()
        self.call('cuInit', 0)
        self.call('cuDeviceGet', ctypes.byref(device), 0)
        self.call('cuDevicePrimaryCtxRetain', ctypes.byref(self.context), device)
        self.call('cuCtxSetCurrent', self.context)

    def call(self, name, *args):
        status = getattr(self.cuda, name)(*args)
        if status != 0:
            text = ctypes.c_char_p()
            self.cuda.cuGetErrorString(status, ctypes.byref(text))
            raise RuntimeError(f'{name}: CUDA driver error {status} '
                               f'({(text.value or b"?").decode()})')

    def allocate(self, nbytes):
        pointer = ctypes.c_uint64()
        self.call('cuMemAlloc_v2', ctypes.byref(pointer), ctypes.c_size_t(nbytes))
        return pointer.value

    def fill(self, array):
        data = random_bytes(array, self.rng)
        self.call('cuMemcpyHtoD_v2', ctypes.c_uint64(array.pointer), data,
                  ctypes.c_size_t(len(data)))

    def synchronize(self):
        self.call('cuCtxSynchronize')


class Host:
    """Host memory for the emulated kernels."""

    def __init__(self):
        self.buffers, self.rng = [], random.Random(0)

    def allocate(self, nbytes):
        buffer = ctypes.create_string_buffer(nbytes)
        self.buffers.append(buffer)
        return ctypes.addressof(buffer)

    def fill(self, array):
        data = random_bytes(array, self.rng)
        ctypes.memmove(array.pointer, data, len(data))

    def synchronize(self):
        pass


def workspace(memory, nbytes):
    return Array(memory, (int(nbytes),), WORKSPACE) if nbytes > 0 else None


def reorder_calls(lib, memory, dtype):
    """(what, call) for each shape of REORDER."""
    for shape, branch_factor in REORDER:
        src, dst = Array(memory, shape, dtype), Array(memory, shape, dtype)
        yield (f'Reorder {shape} branch_factor={branch_factor}',
               functools.partial(kernels.reorder, src, dst, branch_factor, device='cuda', lib=lib))


def igc_calls(lib, memory, dtype):
    """(what, call) for each pass of each shape of IGC."""
    for n, c, h, w, L, M in IGC:
        x, dy = Array(memory, (n, c, h, w), dtype), Array(memory, (n, c, h, w), dtype)
        weight, out = Array(memory, (c, c // M), dtype), Array(memory, (n, c, h, w), dtype)
        space = workspace(memory, kernels.interleaved_conv_workspace((n, c, h, w), L, M, dtype,
                                                                     lib=lib))
        arrays = {'forward': (x, weight, out), 'backward_data': (dy, weight, out),
                  'backward_weight': (dy, x, weight)}
        for pass_name, (a, b, result) in arrays.items():
            yield (f'InterleavedGroupConv {pass_name} {(n, c, h, w)} L={L} M={M}',
                   functools.partial(kernels.interleaved_conv, pass_name, a, b, result, L, M,
                                     device='cuda', lib=lib, workspace=space))


def group_conv_calls(lib, memory, dtype):
    """(what, call) for each pass of each shape of GROUP_CONV."""
    for n, c, h, w, f, groups, k, stride, pad in GROUP_CONV:
        g = kernels.ConvGeometry(n, c, h, w, f, groups, k, k, stride, stride, pad, pad)
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        x, dy = Array(memory, (n, c, h, w), dtype), Array(memory, (n, f, oh, ow), dtype)
        weight = Array(memory, (f, c // groups, k, k), dtype)
        y, dx = Array(memory, (n, f, oh, ow), dtype), Array(memory, (n, c, h, w), dtype)
        space = workspace(memory, kernels.group_conv_workspace(g, dtype, lib=lib))
        arrays = {'forward': (x, weight, y), 'backward_data': (dy, weight, dx),
                  'backward_weight': (dy, x, weight)}
        for pass_name, (a, b, result) in arrays.items():
            yield (f'GroupConvolution {pass_name} {(n, c, h, w)} filters={f} groups={groups} '
                   f'kernel={k} stride={stride} pad={pad}',
                   functools.partial(kernels.group_conv, pass_name, g, a, b, result,
                                     device='cuda', lib=lib, workspace=space))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--library', type=Path, required=True,
                        help='libigc_kernels.so built with CUDA, or the emulated library')
    parser.add_argument('--emulated', action='store_true',
                        help='the library is libigc_kernels_emulated.so: host memory')
    parser.add_argument('--dtype', choices=sorted(DTYPES), action='append',
                        help='only this dtype (repeatable; default: all three)')
    args = parser.parse_args(argv)
    lib = kernels.load(args.library)
    memory = Host() if args.emulated else Driver()
    dtypes = args.dtype or list(DTYPES)
    calls = 0
    for dtype in dtypes:
        for make in (reorder_calls, igc_calls, group_conv_calls):
            for what, call in make(lib, memory, dtype):
                try:
                    call()
                    memory.synchronize()
                except (ValueError, RuntimeError) as error:
                    print(f'[sanitize] {what} {dtype}: {error}', file=sys.stderr)
                    return 1
                calls += 1
    print(f'[sanitize] {calls} calls ran: every kernel, {", ".join(dtypes)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
