"""Test and time the CUDA GroupConvolution kernels without MXNet, on a GPU machine
with PyTorch.

Builds libigc_kernels.so (CMake, IGC_KERNELS_ONLY + IGC_USE_CUDA: no MXNet
needed), calls igc_group_conv_{forward,backward_data,backward_weight}_cuda
through ctypes on torch tensors, checks them against torch conv2d(groups=...)
and its autograd gradients, and times them against torch (cuDNN).

    python3 bench/gpu/group_conv_gpu.py [--json out.json] [--build-dir DIR]

Exit status 1 if any case disagrees with torch.
"""
import ctypes
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (DTYPES, command_line, finish, open_library, relative_error,  # noqa: E402
                     stream, time_ms)

TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2}
PASSES = ('forward', 'backward_data', 'backward_weight')
# (name, batch, channels, size, filters, groups, kernel, stride, pad)
CASES = [
    ('cifar L24M2 stage 1', 32, 48, 32, 48, 24, 3, 1, 1),
    ('cifar L24M2 stage 2', 32, 96, 16, 96, 24, 3, 1, 1),
    ('cifar L24M2 stage 3', 32, 192, 8, 192, 24, 3, 1, 1),
    ('cifar widening, stride 2', 32, 48, 32, 96, 24, 3, 2, 1),
    ('imagenet L16M16 stage 1', 8, 256, 56, 256, 16, 3, 1, 1),
    ('odd sizes', 3, 12, 13, 12, 4, 3, 2, 0),
    ('1x1 stride 2', 4, 32, 9, 64, 8, 1, 2, 0),
    ('5x5, 32 per group', 2, 64, 11, 64, 2, 5, 1, 2),
]


class Geometry(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        'batch', 'channels', 'height', 'width', 'filters', 'groups',
        'kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w')]


def load(path):
    lib = open_library(path)
    for name in PASSES:
        fn = getattr(lib, f'igc_group_conv_{name}_cuda')
        fn.argtypes = [ctypes.POINTER(Geometry)] + [ctypes.c_void_p] * 3 + \
            [ctypes.c_int, ctypes.c_void_p]
        fn.restype = ctypes.c_int
    return lib


def call(lib, name, geometry, a, b, out):
    status = getattr(lib, f'igc_group_conv_{name}_cuda')(
        ctypes.byref(geometry), a.data_ptr(), b.data_ptr(), out.data_ptr(), DTYPES[a.dtype],
        stream())
    if status:
        raise RuntimeError(f'igc_group_conv_{name}_cuda: {lib.igc_status_string(status).decode()}'
                           f' ({lib.igc_last_group_conv_cuda_error().decode()})')


def run_case(lib, case, dtype, device):
    name, n, c, size, f, g, k, s, p = case
    geometry = Geometry(n, c, size, size, f, g, k, k, s, s, p, p)
    x = torch.randn(n, c, size, size, device=device, dtype=dtype, requires_grad=True)
    w = torch.randn(f, c // g, k, k, device=device, dtype=dtype, requires_grad=True)
    y_ref = F.conv2d(x, w, stride=s, padding=p, groups=g)
    head = torch.randn_like(y_ref)
    dx_ref, dw_ref = torch.autograd.grad(y_ref, (x, w), head)
    x, w = x.detach(), w.detach()
    y, dx, dw = torch.empty_like(y_ref), torch.empty_like(x), torch.empty_like(w)
    ours = {'forward': lambda: call(lib, 'forward', geometry, x, w, y),
            'backward_data': lambda: call(lib, 'backward_data', geometry, head, w, dx),
            'backward_weight': lambda: call(lib, 'backward_weight', geometry, head, x, dw)}
    for fn in ours.values():
        fn()
    torch.cuda.synchronize()
    errors = {'forward': relative_error(y, y_ref), 'backward_data': relative_error(dx, dx_ref),
              'backward_weight': relative_error(dw, dw_ref)}
    ok = all(e <= TOLERANCE[dtype] for e in errors.values())
    row = {'case': name, 'dtype': str(dtype).split('.')[-1], 'errors': errors, 'ok': ok}
    if dtype is torch.float32:
        xg = x.clone().requires_grad_()
        wg = w.clone().requires_grad_()

        def torch_fwd_bwd():
            out = F.conv2d(xg, wg, stride=s, padding=p, groups=g)
            torch.autograd.grad(out, (xg, wg), head)

        row['ours_ms'] = {k_: time_ms(fn) for k_, fn in ours.items()}
        row['ours_fwd_bwd_ms'] = sum(row['ours_ms'].values())
        row['torch_fwd_bwd_ms'] = time_ms(torch_fwd_bwd)
        row['speedup_vs_torch'] = row['torch_fwd_bwd_ms'] / row['ours_fwd_bwd_ms']
    return row


def main():
    args, path = command_line(__doc__)
    lib = load(path)
    device = torch.device('cuda')
    results = []
    for case in CASES:
        for dtype in DTYPES:
            row = run_case(lib, case, dtype, device)
            results.append(row)
            print(json.dumps(row))
    return finish(args, results, cudnn=torch.backends.cudnn.version())


if __name__ == '__main__':
    sys.exit(main())
