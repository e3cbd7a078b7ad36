"""What works without MXNet: importing igc_mx, the kernels through ctypes (from the
installed library, $IGC_KERNELS_LIBRARY or an explicit path), the atomic writes, and the
dataset, curve and launch tools. Each test runs a fresh interpreter in which MXNet
cannot be imported."""
import os
import shutil
import subprocess
import sys

import numpy as np

from igc_mx import _locate

from conftest import BLOCK_MXNET


def python_without_mxnet(code, **env):
    return subprocess.run([sys.executable, '-c', BLOCK_MXNET + code], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def run_without_mxnet(code, **env):
    """stdout of ``code``, which must succeed."""
    result = python_without_mxnet(code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_package_and_kernels_import_and_run_without_mxnet():
    out = run_without_mxnet("""
import numpy as np
import igc_mx
from igc_mx import atomic, kernels
assert 'mxnet' not in sys.modules and not igc_mx.HAS_MXNET
x = np.arange(24, dtype='float32').reshape(2, 12)
y = np.empty_like(x)
kernels.reorder(x, y, 3)
print(y[0].astype(int).tolist())
try:
    igc_mx.build_info
except ImportError as error:
    print(error)
""")
    lines = out.splitlines()
    x = np.arange(12)
    assert lines[0] == str(x.reshape(3, 4).T.reshape(-1).tolist())   # Reorder(3)
    assert lines[1] == 'igc_mx.build_info needs MXNet, which is not installed ' \
                       '(pip install mxnet==1.9.1)'


def test_no_mxnet_variable_leaves_mxnet_unimported():
    result = subprocess.run(
        [sys.executable, '-c', 'import sys, igc_mx\nprint("mxnet" in sys.modules)\n'
         'igc_mx.conv_bn'], capture_output=True, text=True, timeout=120,
        env={**os.environ, 'IGC_MX_NO_MXNET': '1'})
    assert result.returncode == 1 and result.stdout == 'False\n'
    assert 'igc_mx.conv_bn needs MXNet, which IGC_MX_NO_MXNET=1 leaves unimported' \
        in result.stderr


def test_kernels_library_from_environment_or_path(tmp_path):
    copy = tmp_path / 'build' / 'libigc_kernels.so'
    copy.parent.mkdir()
    shutil.copy(_locate.find_kernels_library(), copy)
    code = """
from igc_mx import kernels
print(kernels.load()._name)
print(kernels.cpu_isa())
"""
    out = run_without_mxnet(code, IGC_KERNELS_LIBRARY=str(copy)).splitlines()
    assert out[0] == str(copy.resolve()) and out[1] in ('avx512', 'avx2', 'generic')
    out = run_without_mxnet(f"""
from igc_mx import kernels
print(kernels.load({str(copy)!r})._name)
print(kernels.load()._name)
try:
    kernels.load({str(tmp_path / 'none.so')!r})
except FileNotFoundError as error:
    print(error)
""").splitlines()
    assert out[:2] == [str(copy.resolve())] * 2
    assert out[2].startswith(f"igc_mx.kernels.load: {tmp_path / 'none.so'} is not a file.")
    assert 'IGC_KERNELS_ONLY=ON' in out[2]


def test_missing_kernels_library_names_the_variable():
    result = python_without_mxnet('from igc_mx import kernels\nkernels.load()',
                                  IGC_KERNELS_LIBRARY='/nonexistent.so')
    assert result.returncode == 1
    assert "ImportError: IGC_KERNELS_LIBRARY='/nonexistent.so' is not a file" in result.stderr


def test_dataset_curve_and_launch_tools_without_mxnet(tmp_path):
    out = run_without_mxnet(f"""
from igc_mx.datasets import synthetic_cifar
from igc_mx.tools import launch, make_rec, plot_curves
archive = synthetic_cifar.write_archive({str(tmp_path / 'c.tar.gz')!r}, 20, 10, seed=2)
rec = {str(tmp_path / 'rec')!r}
status = [make_rec.main(['cifar10', archive, rec, '--workers', '2', '--quiet']),
          make_rec.main(['verify', rec, '--workers', '1'])]
log = {str(tmp_path / 'log.txt')!r}
with open(log, 'w') as f:
    f.write('Epoch[0] Train-accuracy=0.5\\n')
status.append(plot_curves.main([log, '-o', {str(tmp_path / 'c.png')!r}]))
status.append(launch.main(['-n', '1', '-s', '1', sys.executable, '-c', 'pass']))
print('status', status, 'mxnet' in sys.modules)
""")
    assert out.splitlines()[-1] == 'status [0, 0, 0, 0] False'
    assert (tmp_path / 'rec' / 'manifest.json').is_file() and (tmp_path / 'c.png').is_file()
