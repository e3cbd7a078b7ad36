"""The GPU check's parts that run without a GPU: bench/gpu/sanitize.py, which
scripts/gpu_check.sh runs under compute-sanitizer, on the emulated kernels (whose
own checks then apply); and the script's arguments and early refusals."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from igc_mx import kernels

from conftest import load_module

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'scripts' / 'gpu_check.sh'
SOURCES = REPO / 'src' / 'operator'


def load_sanitize():
    return load_module('sanitize', 'bench/gpu/sanitize.py')


def launched_kernels():
    """Every kernel name that an IGC_LAUNCH of a .cu file passes."""
    return {match.group(1).strip() for path in SOURCES.glob('*.cu')
            for match in re.finditer(r'IGC_LAUNCH\(\s*(\(.*?\)|[\w:<>]+)\s*,', path.read_text())}


def test_sanitize_runs_every_kernel(capsys):
    emu = kernels.load_emulated()
    emu.igc_emu_reset()
    try:
        status = load_sanitize().main(['--library', emu._name, '--emulated', '--dtype',
                                       'float32'])
        ran = {line.split('\t')[0] for line in emu.igc_emu_launches().decode().splitlines()}
    finally:
        emu.igc_emu_reset()
    assert status == 0, capsys.readouterr().err
    assert launched_kernels() <= ran
    assert 'calls ran: every kernel, float32' in capsys.readouterr().out


def run_script(tmp_path, *args, path=None, timeout=120):
    env = {**os.environ, 'OUT': str(tmp_path / 'out'), 'IGC_GPU_CHECK_BUILD': str(tmp_path / 'b')}
    if path is not None:
        env['PATH'] = f'{path}:{env["PATH"]}'
    return subprocess.run(['bash', str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_the_help_lists_every_option(tmp_path):
    result = run_script(tmp_path, '--help')
    assert result.returncode == 0, result.stderr
    for option in ('--wheels DIR', '--cuda-from-wheels', '--build-only', '--dry-run'):
        assert option in result.stdout


@pytest.mark.parametrize('args,message', [
    (('--bogus',), "unknown argument '--bogus': expected --wheels DIR, --cuda-from-wheels"),
    (('--wheels',), '--wheels needs a folder'),
    (('--wheels', '/nonexistent/wheels'), '--wheels /nonexistent/wheels: not a folder'),
])
def test_bad_arguments_are_refused(tmp_path, args, message):
    result = run_script(tmp_path, *args)
    assert result.returncode == 1
    assert message in result.stderr


def fake_nvidia_smi(tmp_path, cuda_version):
    """An nvidia-smi that reports one sm_90 GPU whose driver runs CUDA cuda_version."""
    smi = tmp_path / 'bin' / 'nvidia-smi'
    smi.parent.mkdir()
    smi.write_text('#!/bin/sh\n'
                   'case "$*" in\n'
                   '  *compute_cap*) case "$*" in *name*) echo "H200, 999.0, 9.0";; '
                   '*) echo "9.0";; esac;;\n'
                   f'  *) echo "| NVIDIA-SMI 999.0   Driver Version: 999.0   CUDA Version: '
                   f'{cuda_version}     |";;\n'
                   'esac\n')
    smi.chmod(0o755)
    return smi.parent


def test_without_a_gpu_the_check_says_what_runs_instead(tmp_path):
    if shutil.which('nvidia-smi'):
        pytest.skip('this machine has nvidia-smi')
    result = run_script(tmp_path)
    assert result.returncode == 1
    assert 'no working nvidia-smi: is this a GPU machine with its driver? (--build-only and ' \
           '--dry-run need no GPU)' in result.stderr


def test_a_driver_older_than_the_compiler_is_refused(tmp_path):
    nvcc = shutil.which('nvcc') or '/usr/local/cuda/bin/nvcc'
    if not Path(nvcc).is_file():
        pytest.skip('no nvcc')
    release = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    major = int(release.split('release ')[1].split('.')[0])
    result = run_script(tmp_path, path=fake_nvidia_smi(tmp_path, f'{major - 1}.4'))
    assert result.returncode == 1
    assert f'the driver runs CUDA up to {major - 1}.4, and nvcc {major}.' in result.stderr
    assert 'install a driver for CUDA' in result.stderr


def test_missing_cuda_wheels_are_named(tmp_path):
    empty = tmp_path / 'wheels'
    empty.mkdir()
    result = run_script(tmp_path, '--cuda-from-wheels', '--wheels', str(empty),
                        path=fake_nvidia_smi(tmp_path, '13.0'))
    assert result.returncode == 1
    assert f'the CUDA wheels could not be installed from {empty} (nvidia-cuda-nvcc>=13.0,<13.1' \
        in result.stderr
