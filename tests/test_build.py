"""The CMake build: against an MXNet tree given by -DMXNET_ROOT, and with CUDA.
Each test configures and builds in a temporary directory; the CUDA tests share one
build, whose compile also reports each kernel's registers, shared memory and
spills for the resource checks (bench/gpu/resources.py)."""
import functools
import os
import re
import shutil
import struct
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import mxnet as mx
import pytest

from conftest import load_module

REPO_ROOT = Path(__file__).resolve().parents[1]
MXNET_PACKAGE = Path(mx.__file__).resolve().parent


def tool(name):
    """A build tool from this interpreter's environment first, then PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def cmake_build(build_dir, *options, target=None):
    """Configures and builds (``target`` alone, if given); the build's output is left in
    build_dir/build-output.txt."""
    cmake = tool('cmake')
    if cmake is None:
        pytest.skip('cmake is not installed')
    generator = ['-G', 'Ninja'] if tool('ninja') else []
    subprocess.run([cmake, '-S', str(REPO_ROOT), '-B', str(build_dir), *generator,
                    f'-DPython_EXECUTABLE={sys.executable}', *options],
                   check=True, capture_output=True, text=True, timeout=300)
    targets = ['--target', target] if target else []
    result = subprocess.run([cmake, '--build', str(build_dir), '--parallel', '2', *targets],
                            check=True, capture_output=True, text=True, timeout=900)
    (build_dir / 'build-output.txt').write_text(result.stdout + result.stderr)
    return build_dir


@pytest.mark.slow
def test_build_against_mxnet_tree_records_its_version(tmp_path):
    # A tree that claims to be MXNet 1.9.0: the library must refuse to load into 1.9.1.
    tree = tmp_path / 'mxnet-1.9.0'
    shutil.copytree(MXNET_PACKAGE / 'include', tree / 'include')
    shutil.copytree(MXNET_PACKAGE / 'src', tree / 'src')
    base_h = tree / 'include' / 'mxnet' / 'base.h'
    base_h.write_text(re.sub(r'#define MXNET_PATCH 1\b', '#define MXNET_PATCH 0',
                             base_h.read_text()))
    # unoptimized: what is tested is the version the build records, not speed
    build = cmake_build(tmp_path / 'build', f'-DMXNET_ROOT={tree}', '-DIGC_CUDA_EMULATION=OFF',
                        '-DCMAKE_BUILD_TYPE=Debug', target='igc_mx_ops')
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


def fatbin_targets(library):
    """{('sm', N)} of the machine code and {('compute', N)} of the PTX that a CUDA
    library embeds, read from its .nv_fatbin section (a list of containers, magic
    0xBA55ED50, each a list of entries: kind 1 PTX / 2 ELF, header size, payload
    size, and the architecture number at byte 28)."""
    section = subprocess.run(['objcopy', '-O', 'binary', '--only-section=.nv_fatbin',
                              str(library), '/dev/stdout'], capture_output=True, check=True)
    data = section.stdout
    targets, offset = set(), 0
    while offset + 16 <= len(data):
        magic, _, header, size = struct.unpack_from('<IHHQ', data, offset)
        if magic != 0xBA55ED50:
            offset += 8
            continue
        entry, end = offset + header, offset + header + size
        while entry < end:
            kind, _, entry_header, payload = struct.unpack_from('<HHII', data, entry)
            arch = struct.unpack_from('<I', data, entry + 28)[0]
            targets.add(({1: 'compute', 2: 'sm'}[kind], arch))
            entry += entry_header + payload
        offset = end
    return targets


def supported_architectures(nvcc):
    listing = subprocess.run([nvcc, '--list-gpu-code'], capture_output=True, text=True).stdout
    return {int(n) for n in re.findall(r'sm_(\d+)', listing)}


CANDIDATES = {50, 60, 70, 75, 80, 86, 89, 90}


def architecture_list(archs):
    """CMake's list for native code of each of ``archs`` and PTX of the highest."""
    archs = sorted(archs)
    return ';'.join([f'{a}-real' for a in archs[:-1]] + [str(archs[-1])])


CudaBuild = namedtuple('CudaBuild', 'build keep')


@pytest.fixture(scope='module')
def cuda_build(tmp_path_factory):
    """Both libraries built with CUDA, once for this module's tests. The compile
    reports each kernel's resources (-Xptxas=-v, in build-output.txt) and keeps the
    PTX, which holds the kernels' __launch_bounds__ (--keep)."""
    nvcc = load_resources().find_nvcc()
    if nvcc is None:
        if os.environ.get('CI'):
            pytest.fail('CI must compile the CUDA sources, but no nvcc was found '
                        '(set CUDACXX or put nvcc on PATH)')
        pytest.skip('no CUDA compiler (nvcc) found')
    root = tmp_path_factory.mktemp('cuda')
    keep = root / 'keep'
    keep.mkdir()
    # The resource checks' architectures only (the default list is checked at configure
    # time, test_default_cuda_architectures_with_this_nvcc): compiling for five would
    # cost the suite a minute more.
    archs = architecture_list(load_resources().ARCHS)
    # Debug: the host code unoptimized; ptxas optimizes device code the same either way
    build = cmake_build(root / 'build', '-DIGC_USE_CUDA=ON', '-DIGC_CUDA_EMULATION=OFF',
                        '-DCMAKE_BUILD_TYPE=Debug',
                        f'-DCMAKE_CUDA_COMPILER={nvcc}', f'-DCMAKE_CUDA_ARCHITECTURES={archs}',
                        f'-DCMAKE_CUDA_FLAGS=-Xptxas=-v --keep --keep-dir={keep}')
    return CudaBuild(build, keep)


@functools.cache
def load_resources():
    """bench/gpu/resources.py, the resource checks and table."""
    return load_module('resources', 'bench/gpu/resources.py')


def kernel_resources(cuda_build):
    resources = load_resources()
    log = (cuda_build.build / 'build-output.txt').read_text()
    return resources, resources.from_compile(log, cuda_build.keep)


@pytest.mark.slow
def test_cuda_sources_compile(cuda_build):
    build, archs = cuda_build.build, load_resources().ARCHS
    for name in ('libigc_kernels.so', 'libigc_mx_ops.so'):
        symbols = subprocess.run(['nm', '-D', '--defined-only', str(build / name)],
                                 capture_output=True, text=True, check=True).stdout
        for kernel in ('igc_reorder_cuda', 'igc_interleaved_conv_forward_cuda',
                       'igc_interleaved_conv_backward_data_cuda',
                       'igc_interleaved_conv_backward_weight_cuda',
                       'igc_interleaved_conv_backward_weight_cuda_workspace',
                       'igc_group_conv_forward_cuda', 'igc_group_conv_backward_data_cuda',
                       'igc_group_conv_backward_weight_cuda',
                       'igc_group_conv_backward_weight_cuda_workspace'):
            assert kernel in symbols
    # Machine code for each architecture asked for, PTX of the last ('90' without -real).
    targets = fatbin_targets(build / 'libigc_kernels.so')
    assert {n for kind, n in targets if kind == 'sm'} == set(archs)
    assert {n for kind, n in targets if kind == 'compute'} == {max(archs)}


@pytest.mark.slow
def test_cuda_kernels_neither_spill_nor_break_their_launch_bounds(cuda_build):
    resources, kernels = kernel_resources(cuda_build)
    names = {k.name for k in kernels}
    # every kernel of every source, for both architectures
    assert {k.arch for k in kernels} == set(resources.ARCHS)
    assert len(kernels) == len(names) * len(resources.ARCHS)
    for source in ('reorder_cuda.cu', 'igc_conv_cuda.cu', 'group_conv_cuda.cu'):
        assert any(name.startswith(source) for name in names), source
    assert resources.problems(kernels) == []


@pytest.mark.slow
def test_the_docs_show_the_resources_the_compiler_reports(cuda_build):
    resources, kernels = kernel_resources(cuda_build)
    assert resources.docs_table() == resources.markdown(kernels), (
        'docs/gpu_kernels.md is out of date: regenerate its table with '
        '`python bench/gpu/resources.py --write`')


def test_default_cuda_architectures_with_this_nvcc(tmp_path):
    """Without a user's list: native code for every candidate this toolkit supports
    (Hopper's 90 included where it does), PTX of the highest."""
    nvcc = load_resources().find_nvcc()
    if nvcc is None:
        pytest.skip('no CUDA compiler (nvcc) found')
    result = configure_cuda(tmp_path, f'-DCMAKE_CUDA_COMPILER={nvcc}')
    assert result.returncode == 0, result.stderr
    chosen = re.search(r'igc_mx: CUDA [\d.]+, architectures (\S+)\n', result.stdout).group(1)
    assert chosen == architecture_list(CANDIDATES & supported_architectures(nvcc))


def configure_cuda(tmp_path, *options, env=None):
    cmake = tool('cmake')
    if cmake is None:
        pytest.skip('cmake is not installed')
    return subprocess.run([cmake, '-S', str(REPO_ROOT), '-B', str(tmp_path / 'b'),
                           '-DIGC_KERNELS_ONLY=ON', '-DIGC_USE_CUDA=ON', *options],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize('how', ['option', 'environment'])
def test_a_users_cuda_architectures_are_kept(tmp_path, how):
    nvcc = load_resources().find_nvcc()
    if nvcc is None:
        pytest.skip('no CUDA compiler (nvcc) found')
    options = [f'-DCMAKE_CUDA_COMPILER={nvcc}']
    if how == 'option':
        result = configure_cuda(tmp_path, *options, '-DCMAKE_CUDA_ARCHITECTURES=80')
    else:
        result = configure_cuda(tmp_path, *options, env={'CUDAARCHS': '80'})
    assert result.returncode == 0, result.stderr
    assert re.search(r'igc_mx: CUDA [\d.]+, architectures 80\n', result.stdout)


FAKE_NVCC = """#!/bin/sh
case "$1" in
  --version) echo "Cuda compilation tools, release {release}, V{release}.0";;
  --list-gpu-code) {listing};;
esac
"""


@pytest.mark.parametrize('release,listing,expected', [
    ('11.2', 'exit 1', '50-real;60-real;70-real;75-real;80-real;86'),
    ('11.8', 'exit 1', '50-real;60-real;70-real;75-real;80-real;86-real;89-real;90'),
    ('13.0', 'printf "sm_75\\nsm_80\\nsm_86\\nsm_89\\nsm_90\\nsm_100\\n"',
     '75-real;80-real;86-real;89-real;90'),
])
def test_default_cuda_architectures_follow_the_toolkit(tmp_path, release, listing, expected):
    cmake = tool('cmake')
    if cmake is None:
        pytest.skip('cmake is not installed')
    nvcc = tmp_path / 'nvcc'
    nvcc.write_text(FAKE_NVCC.format(release=release, listing=listing))
    nvcc.chmod(0o755)
    script = tmp_path / 'list.cmake'
    script.write_text('cmake_minimum_required(VERSION 3.18)\n'
                      f'include({REPO_ROOT}/cmake/CudaArchitectures.cmake)\n'
                      f'igc_supported_cuda_architectures({nvcc} supported)\n'
                      'igc_cuda_architecture_list("${supported}" chosen)\n'
                      'message("${chosen}")\n')
    result = subprocess.run([cmake, '-P', str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == expected


def test_cuda_without_nvcc_says_what_to_install(tmp_path):
    bare = {'PATH': '/usr/bin:/bin', 'CUDACXX': '', 'CUDA_PATH': ''}
    result = configure_cuda(tmp_path, env=bare)
    if result.returncode == 0:
        pytest.skip('CMake found a CUDA compiler outside PATH')
    message = ' '.join(result.stderr.split())
    assert 'IGC_USE_CUDA=ON needs a CUDA compiler, and no nvcc was found' in message
    assert 'CUDACXX=/path/to/nvcc' in message
