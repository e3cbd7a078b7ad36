"""What the MXNet-free GPU scripts share: building and loading libigc_kernels.so,
CUDA-event timing, and the command line and JSON report of a check-and-time run.

Needs PyTorch with CUDA, CMake and nvcc; never MXNet.
"""
import argparse
import ctypes
import json
import os
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
#: torch dtype -> igc_dtype (reorder_kernels.h)
DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2}


def build(build_dir):
    """Configure and build the kernels-only CUDA library; its path."""
    subprocess.run(['cmake', '-S', str(REPO), '-B', str(build_dir), '-DIGC_KERNELS_ONLY=ON',
                    '-DIGC_USE_CUDA=ON', '-DCMAKE_BUILD_TYPE=Release'], check=True)
    subprocess.run(['cmake', '--build', str(build_dir), '--parallel'], check=True)
    return build_dir / 'libigc_kernels.so'


def open_library(path):
    """ctypes handle with the status functions typed; the caller types its kernels."""
    lib = ctypes.CDLL(str(path))
    lib.igc_status_string.restype = ctypes.c_char_p
    lib.igc_last_cuda_error.restype = ctypes.c_char_p
    lib.igc_last_group_conv_cuda_error.restype = ctypes.c_char_p
    return lib


def stream():
    return torch.cuda.current_stream().cuda_stream


def time_ms(fn, repeats=50):
    """Mean milliseconds of fn() on the current stream, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats


def relative_error(a, b):
    """max |a - b| / max |b|, in float64."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def command_line(doc):
    """Parsed --build-dir/--library/--json, and the library (built unless --library)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--build-dir', type=Path, default=Path('/tmp/igc-kernels-cuda'))
    parser.add_argument('--library', type=Path, help='use this libigc_kernels.so, no build')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    return args, args.library or build(args.build_dir)


def finish(args, results, **extra):
    """Print the summary, write --json atomically; the exit status (1 on any failure)."""
    failures = sum(not row['ok'] for row in results)
    report = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__, **extra,
              'results': results, 'failures': failures}
    if args.json:
        tmp = args.json.with_suffix('.tmp')
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, args.json)
    print(f'{len(results) - failures} passed, {failures} failed')
    return 1 if failures else 0
