"""scripts/setup.sh's choice of packages and build flags (IGC_SETUP_DRY_RUN prints
them without installing), and the linking of the CUDA 11 libraries beside
libmxnet.so for the GPU route."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / 'scripts' / 'setup.sh'
# The CUDA libraries that mxnet-cu112 1.9.1's libmxnet.so needs (readelf -d
# mxnet/libmxnet.so of mxnet_cu112-1.9.1-py3-none-manylinux2014_x86_64.whl), and
# the PyPI package that ships each; libcuda.so.1 comes with the GPU driver.
CU112_LIBRARIES = {
    'libcudart.so.11.0': 'nvidia-cuda-runtime-cu11', 'libcublas.so.11': 'nvidia-cublas-cu11',
    'libcufft.so.10': 'nvidia-cufft-cu11', 'libcurand.so.10': 'nvidia-curand-cu11',
    'libcusolver.so.11': 'nvidia-cusolver-cu11', 'libnvrtc.so.11.2': 'nvidia-cuda-nvrtc-cu11',
    'libcudnn.so.8': 'nvidia-cudnn-cu11', 'libnccl.so.2': 'nvidia-nccl-cu11',
    'libnvToolsExt.so.1': 'nvidia-nvtx-cu11'}


def dry_run(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ('IGC_GPU', 'IGC_USE_CUDA')}
    environ.update(IGC_SETUP_DRY_RUN='1', IGC_VENV=str(tmp_path / 'venv'), **env)
    return subprocess.run(['bash', str(SETUP)], capture_output=True, text=True, env=environ,
                          timeout=60)


def fake_nvcc(tmp_path):
    nvcc = tmp_path / 'nvcc'
    nvcc.write_text('#!/bin/sh\n')
    nvcc.chmod(0o755)
    return nvcc


def test_the_cpu_route_installs_the_cpu_wheel(tmp_path):
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert '-r requirements.txt' in result.stdout
    assert 'requirements-gpu-cu112.txt' not in result.stdout
    assert 'IGC_USE_CUDA=OFF' in result.stdout


def test_the_gpu_route_installs_mxnet_cu112_and_builds_with_cuda(tmp_path):
    nvcc = fake_nvcc(tmp_path)
    result = dry_run(tmp_path, IGC_GPU='cu112', CUDACXX=str(nvcc))
    assert result.returncode == 0, result.stderr
    assert '-r requirements-gpu-cu112.txt' in result.stdout
    assert 'requirements-without-mxnet.txt' in result.stdout   # no CPU mxnet beside it
    assert f'IGC_USE_CUDA=ON CUDACXX={nvcc}' in result.stdout
    assert 'sm_50 to sm_86' in result.stdout                   # what mxnet-cu112 runs on


def test_the_gpu_requirements_pin_every_library_mxnet_cu112_loads():
    pins = dict(line.split('==') for line in (REPO / 'requirements-gpu-cu112.txt')
                .read_text().splitlines() if line and not line.startswith('#'))
    assert pins['mxnet-cu112'] == '1.9.1'
    for library, package in CU112_LIBRARIES.items():
        assert package in pins, f'{library} needs {package}'
    assert pins['nvidia-cudnn-cu11'].startswith('8.')          # libcudnn.so.8
    assert 'mxnet==1.9.1' in (REPO / 'requirements.txt').read_text()


def test_the_gpu_route_without_nvcc_says_what_to_install(tmp_path):
    result = dry_run(tmp_path, IGC_GPU='cu112', PATH='/usr/bin:/bin', CUDACXX='')
    assert result.returncode == 1
    assert 'none was found. Install a CUDA toolkit' in result.stderr
    assert 'CUDACXX=/path/to/nvcc' in result.stderr


def test_an_unknown_gpu_route_is_refused(tmp_path):
    result = dry_run(tmp_path, IGC_GPU='cu118')
    assert result.returncode == 1
    assert 'IGC_GPU=cu118: expected cu112' in result.stderr


def link(site):
    """The link script with only `site` to look in (-S: no site-packages)."""
    return subprocess.run([sys.executable, '-S', str(REPO / 'scripts' / 'link_cuda_libraries.py')],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, 'PYTHONPATH': str(site)})


def test_cuda_libraries_are_linked_beside_libmxnet(tmp_path):
    site = tmp_path / 'site-packages'
    (site / 'mxnet').mkdir(parents=True)
    (site / 'mxnet' / '__init__.py').write_text('raise ImportError("never imported")\n')
    libraries = []
    for package, names in (('cudnn', ['libcudnn.so.8', 'libcudnn_ops_infer.so.8']),
                           ('cublas', ['libcublas.so.11', 'libcublasLt.so.11'])):
        lib = site / 'nvidia' / package / 'lib'
        lib.mkdir(parents=True)
        for name in names:
            (lib / name).write_bytes(name.encode())
            libraries.append(lib / name)
    (site / 'nvidia' / '__init__.py').write_text('')
    for _ in range(2):                                 # the second run changes nothing
        result = link(site)
        assert result.returncode == 0, result.stderr
    for library in libraries:
        linked = site / 'mxnet' / library.name
        assert linked.is_symlink() and not os.path.isabs(os.readlink(linked))
        assert linked.read_bytes() == library.name.encode()
    (site / 'mxnet' / 'libcudnn.so.8').unlink()
    (site / 'mxnet' / 'libcudnn.so.8').write_text('a real file')
    result = link(site)
    assert result.returncode != 0
    assert 'is not a link; not replacing it' in result.stderr


def test_linking_without_the_packages_is_a_clear_error(tmp_path):
    result = link(tmp_path)
    assert result.returncode != 0
    assert 'no mxnet package is installed' in result.stderr
    (tmp_path / 'mxnet').mkdir()
    (tmp_path / 'mxnet' / '__init__.py').write_text('')
    result = link(tmp_path)
    assert result.returncode != 0
    assert 'no nvidia-*-cu11 package is installed' in result.stderr
