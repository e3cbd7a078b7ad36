"""Test and time the CUDA Reorder kernel without MXNet, on a GPU machine with PyTorch.

Builds libigc_kernels.so (CMake, IGC_KERNELS_ONLY + IGC_USE_CUDA: no MXNet
needed), calls igc_reorder_cuda through ctypes on torch tensors, checks it
against torch.nn.functional.channel_shuffle (the same permutation) and times it
against a device-to-device copy of the same bytes (the bandwidth limit).

    python3 bench/gpu/reorder_gpu.py [--json out.json] [--build-dir DIR]

Exit status 1 if any case disagrees with torch.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2}
# (name, shape, groups): IGC shapes at CIFAR and ImageNet scale, plus odd sizes.
CASES = [
    ('cifar L24M2 b64', (64, 48, 32, 32), 24),
    ('cifar L24M2 inverse', (64, 48, 32, 32), 2),
    ('imagenet L16M16 s1 b64', (64, 256, 56, 56), 16),
    ('imagenet L100M2 s4 b64', (64, 1600, 7, 7), 100),
    ('odd 3-D', (7, 15, 13), 5),
    ('odd 5-D', (3, 12, 3, 5, 7), 4),
    ('fc-like 2-D', (1000, 96), 8),
]


def build(build_dir):
    subprocess.run(['cmake', '-S', str(REPO), '-B', str(build_dir), '-DIGC_KERNELS_ONLY=ON',
                    '-DIGC_USE_CUDA=ON', '-DCMAKE_BUILD_TYPE=Release'], check=True)
    subprocess.run(['cmake', '--build', str(build_dir), '--parallel'], check=True)
    return build_dir / 'libigc_kernels.so'


def load(path):
    lib = ctypes.CDLL(str(path))
    lib.igc_reorder_cuda.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + \
        [ctypes.c_int64] * 4 + [ctypes.c_int, ctypes.c_void_p]
    lib.igc_reorder_cuda.restype = ctypes.c_int
    lib.igc_status_string.restype = ctypes.c_char_p
    lib.igc_last_cuda_error.restype = ctypes.c_char_p
    return lib


def reorder(lib, src, dst, groups):
    inner = 1
    for d in src.shape[2:]:
        inner *= d
    status = lib.igc_reorder_cuda(src.data_ptr(), dst.data_ptr(), src.shape[0], src.shape[1],
                                  groups, inner, DTYPES[src.dtype],
                                  torch.cuda.current_stream().cuda_stream)
    if status:
        raise RuntimeError(f'igc_reorder_cuda: {lib.igc_status_string(status).decode()} '
                           f'({lib.igc_last_cuda_error().decode()})')


def reference(x, groups):
    if x.dim() == 4:
        return F.channel_shuffle(x, groups)
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def time_ms(fn, repeats=50):
    for _ in range(5):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--build-dir', type=Path, default=Path('/tmp/igc-kernels-cuda'))
    parser.add_argument('--library', type=Path, help='use this libigc_kernels.so, no build')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    lib = load(args.library or build(args.build_dir))
    device = torch.device('cuda')
    results, failures = [], 0
    for name, shape, groups in CASES:
        for dtype in DTYPES:
            x = torch.randn(shape, device=device).to(dtype)
            y = torch.empty_like(x)
            reorder(lib, x, y, groups)
            ok = torch.equal(y, reference(x, groups))
            failures += not ok
            row = {'case': name, 'shape': shape, 'groups': groups,
                   'dtype': str(dtype).split('.')[-1], 'equal_to_torch': ok}
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
    report = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__,
              'results': results, 'failures': failures}
    if args.json:
        tmp = args.json.with_suffix('.tmp')
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, args.json)
    print(f'{len(results) - failures} passed, {failures} failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
