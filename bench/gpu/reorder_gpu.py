"""Test and time the CUDA Reorder kernel without MXNet, on a GPU machine with PyTorch.

Builds libigc_kernels.so (CMake, IGC_KERNELS_ONLY + IGC_USE_CUDA: no MXNet
needed), calls igc_reorder_cuda through ctypes on torch tensors, checks it
against torch.nn.functional.channel_shuffle (the same permutation) and times it
against a device-to-device copy of the same bytes (the bandwidth limit).

    python3 bench/gpu/reorder_gpu.py [--json out.json] [--build-dir DIR]

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

CASES = [
    ('cifar L24M2 b64', (64, 48, 32, 32), 24),
    ('cifar L24M2 inverse', (64, 48, 32, 32), 2),
    ('imagenet L16M16 s1 b64', (64, 256, 56, 56), 16),
    ('imagenet L100M2 s4 b64', (64, 1600, 7, 7), 100),
    ('odd 3-D', (7, 15, 13), 5),
    ('odd 5-D', (3, 12, 3, 5, 7), 4),
    ('fc-like 2-D', (1000, 96), 8),
]


def load(path):
    lib = open_library(path)
    lib.igc_reorder_cuda.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + \
        [ctypes.c_int64] * 4 + [ctypes.c_int, ctypes.c_void_p]
    lib.igc_reorder_cuda.restype = ctypes.c_int
    return lib


def reorder(lib, src, dst, groups):
    inner = 1
    for d in src.shape[2:]:
        inner *= d
    status = lib.igc_reorder_cuda(src.data_ptr(), dst.data_ptr(), src.shape[0], src.shape[1],
                                  groups, inner, DTYPES[src.dtype], stream())
    if status:
        raise RuntimeError(f'igc_reorder_cuda: {lib.igc_status_string(status).decode()} '
                           f'({lib.igc_last_cuda_error().decode()})')


def reference(x, groups):
    if x.dim() == 4:
        return F.channel_shuffle(x, groups)
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def main():
    args, path = command_line(__doc__)
    lib = load(path)
    device = torch.device('cuda')
    results = []
    for name, shape, groups in CASES:
        for dtype in DTYPES:
            x = torch.randn(shape, device=device).to(dtype)
            y = torch.empty_like(x)
            reorder(lib, x, y, groups)
            ok = torch.equal(y, reference(x, groups))
            row = {'case': name, 'shape': shape, 'groups': groups,
                   'dtype': str(dtype).split('.')[-1], 'ok': ok}
            if dtype is torch.float32:
                moved = 2 * x.numel() * x.element_size()  # read + write
                ours = time_ms(lambda: reorder(lib, x, y, groups))
                copy = time_ms(lambda: y.copy_(x))
                torch_shuffle = time_ms(lambda: reference(x, groups))
                row.update(ours_ms=ours, copy_ms=copy, torch_ms=torch_shuffle,
                           ours_gbps=moved / ours / 1e6, copy_gbps=moved / copy / 1e6,
                           fraction_of_copy=copy / ours, speedup_vs_torch=torch_shuffle / ours)
            results.append(row)
            print(json.dumps(row))
    return finish(args, results)


if __name__ == '__main__':
    sys.exit(main())
