"""Test and time the CUDA fused interleaved group convolution without MXNet, on a GPU
machine with PyTorch (build, loading and timing from harness.py).

Calls igc_interleaved_conv_{forward,backward_data,backward_weight}_cuda through ctypes
on torch tensors; checks them against PyTorch's unfused graph
(channel_shuffle(L) -> 1x1 conv2d(groups=M) -> channel_shuffle(M), with autograd) in
float32, float64 and float16; times forward+backward against that graph and against
the 1x1 convolution alone.

    python3 bench/gpu/igc_conv_gpu.py [--json out.json] [--build-dir DIR | --library SO]

Exit status 1 if any case disagrees with torch.
"""
import ctypes
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import DTYPES, command_line, finish, open_library, stream, time_ms  # noqa: E402

PASSES = ('forward', 'backward_data', 'backward_weight')
# (name, (N, C, H, W), L, M): IGC units of the paper's networks, plus C/M = 2L (two
# slabs per group, the first unit of a CIFAR resnet_igc stage) and odd sizes.
CASES = [
    ('cifar L24M2 b64', (64, 48, 32, 32), 24, 2),
    ('cifar L24M2 two slabs b64', (64, 96, 16, 16), 24, 2),
    ('imagenet L16M16 s1 b32', (32, 256, 56, 56), 16, 16),
    ('imagenet L4M32 s1 b32', (32, 128, 56, 56), 4, 32),
    ('imagenet L100M2 s4 b32', (32, 1600, 7, 7), 800, 2),
    ('odd', (3, 30, 5, 7), 5, 3),
]
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2}


def load(path):
    lib = open_library(path)
    for name in PASSES:
        fn = getattr(lib, f'igc_interleaved_conv_{name}_cuda')
        fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 5 + [ctypes.c_int,
                                                                      ctypes.c_void_p]
        fn.restype = ctypes.c_int
    return lib


def run_pass(lib, name, a, b, c, L, M):
    """a is (N, C, H, W) in every pass: data (forward) or the output gradient."""
    n, channels, h, w = a.shape
    status = getattr(lib, f'igc_interleaved_conv_{name}_cuda')(
        a.data_ptr(), b.data_ptr(), c.data_ptr(), n, channels, h * w, L, M, DTYPES[a.dtype],
        stream())
    if status:
        raise RuntimeError(f'{name}: {lib.igc_status_string(status).decode()} '
                           f'({lib.igc_last_cuda_error().decode()})')


def unfused(x, w, L, M):
    return F.channel_shuffle(F.conv2d(F.channel_shuffle(x, L), w, groups=M), M)


def fused_step(lib, x, w, dy, y, dx, dw, L, M):
    run_pass(lib, 'forward', x, w, y, L, M)
    run_pass(lib, 'backward_data', dy, w, dx, L, M)
    run_pass(lib, 'backward_weight', dy, x, dw, L, M)


def check(lib, shape, L, M, dtype):
    """Max error of (y, dx, dw) against torch's unfused graph, relative to its scale."""
    device = torch.device('cuda')
    compute = torch.float32 if dtype is torch.float16 else dtype   # reference precision
    x = torch.randn(shape, device=device, dtype=compute)
    w = torch.randn(shape[1], shape[1] // M, 1, 1, device=device, dtype=compute)
    dy = torch.randn(shape, device=device, dtype=compute)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    yr = unfused(xr, wr, L, M)
    yr.backward(dy)
    xs, ws, dys = x.to(dtype), w.to(dtype), dy.to(dtype)
    y, dx, dw = torch.empty_like(xs), torch.empty_like(xs), torch.empty_like(ws)
    fused_step(lib, xs, ws, dys, y, dx, dw, L, M)
    torch.cuda.synchronize()
    errors = [((got.to(compute) - want).abs().max() / want.abs().max()).item()
              for got, want in ((y, yr), (dx, xr.grad), (dw, wr.grad))]
    return max(errors)


def timings(lib, shape, L, M):
    device = torch.device('cuda')
    x = torch.randn(shape, device=device)
    w = torch.randn(shape[1], shape[1] // M, 1, 1, device=device)
    dy = torch.randn(shape, device=device)
    y, dx, dw = torch.empty_like(x), torch.empty_like(x), torch.empty_like(w)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()

    def torch_unfused():
        unfused(xr, wr, L, M).backward(dy)

    def torch_conv_alone():
        F.conv2d(xr, wr, groups=M).backward(dy)
    return {'fused_ms': time_ms(lambda: fused_step(lib, x, w, dy, y, dx, dw, L, M)),
            'torch_unfused_ms': time_ms(torch_unfused),
            'torch_conv_alone_ms': time_ms(torch_conv_alone)}


def main():
    args, path = command_line(__doc__)
    lib = load(path)
    results = []
    for name, shape, L, M in CASES:
        for dtype in DTYPES:
            error = check(lib, shape, L, M, dtype)
            ok = error <= TOLERANCE[dtype]
            row = {'case': name, 'shape': shape, 'L': L, 'M': M,
                   'dtype': str(dtype).split('.')[-1], 'max_relative_error': error, 'ok': ok}
            if dtype is torch.float32:
                row.update(timings(lib, shape, L, M))
                row['speedup_vs_torch_unfused'] = row['torch_unfused_ms'] / row['fused_ms']
                row['fused_over_conv_alone'] = row['fused_ms'] / row['torch_conv_alone_ms']
            results.append(row)
            print(json.dumps(row))
    return finish(args, results)


if __name__ == '__main__':
    sys.exit(main())
