"""The CMake build: against an MXNet tree given by -DMXNET_ROOT, and with CUDA.
Each test configures and builds in a temporary directory."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MXNET_PACKAGE = Path(mx.__file__).resolve().parent


def tool(name):
    """A build tool from this interpreter's environment first, then PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def cmake_build(build_dir, *options):
    cmake = tool('cmake')
    if cmake is None:
        pytest.skip('cmake is not installed')
    generator = ['-G', 'Ninja'] if tool('ninja') else []
    subprocess.run([cmake, '-S', str(REPO_ROOT), '-B', str(build_dir), *generator,
                    f'-DPython_EXECUTABLE={sys.executable}', *options],
                   check=True, capture_output=True, text=True, timeout=300)
    subprocess.run([cmake, '--build', str(build_dir), '--parallel', '2'], check=True,
                   capture_output=True, text=True, timeout=900)
    return build_dir


def find_nvcc():
    for candidate in (os.environ.get('CUDACXX'), shutil.which('nvcc'),
                      '/usr/local/cuda/bin/nvcc'):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.mark.slow
def test_build_against_mxnet_tree_records_its_version(tmp_path):
    # A tree that claims to be MXNet 1.9.0: the library must refuse to load into 1.9.1.
    tree = tmp_path / 'mxnet-1.9.0'
    shutil.copytree(MXNET_PACKAGE / 'include', tree / 'include')
    shutil.copytree(MXNET_PACKAGE / 'src', tree / 'src')
    base_h = tree / 'include' / 'mxnet' / 'base.h'
    base_h.write_text(re.sub(r'#define MXNET_PATCH 1\b', '#define MXNET_PATCH 0',
                             base_h.read_text()))
    build = cmake_build(tmp_path / 'build', f'-DMXNET_ROOT={tree}')
    library = build / 'libigc_mx_ops.so'
    assert library.is_file()
    result = subprocess.run([sys.executable, '-c', 'import igc_mx'], capture_output=True,
                            text=True, env={**os.environ, 'IGC_MX_LIBRARY': str(library)},
                            timeout=120)
    assert result.returncode == 1
    assert 'built against MXNet version code 10900' in result.stderr


def test_bad_mxnet_root_is_a_clear_configure_error(tmp_path):
    cmake = tool('cmake')
    if cmake is None:
        pytest.skip('cmake is not installed')
    result = subprocess.run([cmake, '-S', str(REPO_ROOT), '-B', str(tmp_path / 'b'),
                             f'-DMXNET_ROOT={tmp_path}'], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    message = ''.join(result.stderr.split())  # CMake wraps long messages
    assert f'MXNET_ROOT={tmp_path}lacks{tmp_path}/include/mxnet/lib_api.h' in message


@pytest.mark.slow
def test_cuda_sources_compile(tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        if os.environ.get('CI'):
            pytest.fail('CI must compile the CUDA sources, but no nvcc was found '
                        '(set CUDACXX or put nvcc on PATH)')
        pytest.skip('no CUDA compiler (nvcc) found')
    build = cmake_build(tmp_path / 'build', '-DIGC_USE_CUDA=ON',
                        f'-DCMAKE_CUDA_COMPILER={nvcc}')
    for name in ('libigc_kernels.so', 'libigc_mx_ops.so'):
        symbols = subprocess.run(['nm', '-D', '--defined-only', str(build / name)],
                                 capture_output=True, text=True, check=True).stdout
        for kernel in ('igc_reorder_cuda', 'igc_interleaved_conv_forward_cuda',
                       'igc_interleaved_conv_backward_data_cuda',
                       'igc_interleaved_conv_backward_weight_cuda',
                       'igc_group_conv_forward_cuda', 'igc_group_conv_backward_data_cuda',
                       'igc_group_conv_backward_weight_cuda'):
            assert kernel in symbols
