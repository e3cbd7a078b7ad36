"""What works without MXNet: importing igc_mx, the kernels through ctypes (from the
installed library, $IGC_KERNELS_LIBRARY or an explicit path) and the atomic writes.
Each test runs a fresh interpreter in which MXNet cannot be imported."""
import os
import shutil
import subprocess
import sys

import numpy as np

from conftest import BLOCK_MXNET
from igc_mx import _locate


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
kernels.reorder_cpu(x, y, 3)
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


def test_kernels_library_from_environment_or_path(tmp_path):
    copy = tmp_path / 'build' / 'libigc_kernels.so'
    copy.parent.mkdir()
    shutil.copy(_locate.find_kernels_library(), copy)
    code = """
from igc_mx import kernels
print(kernels.load()._name)
print(kernels.group_conv_cpu_isa())
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
