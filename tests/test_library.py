"""Loading the operator library: clear ImportErrors, never a crashed process."""
import os
import shutil
import subprocess
import sys

import mxnet as mx
import pytest

import igc_mx
from igc_mx import _library


def run_python(code, **env):
    """Run `code` in a fresh interpreter; a crash would show as a signal exit code."""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_ops_are_in_both_namespaces():
    assert callable(mx.nd.Reorder) and callable(mx.sym.Reorder)
    assert mx.nd.op.Reorder is mx.nd.Reorder and mx.sym.op.Reorder is mx.sym.Reorder
    info = igc_mx.build_info()
    assert info['mxnet_version'] == '10901' and info['cuda'] in ('0', '1')


def test_missing_library_raises_import_error():
    result = run_python('import igc_mx', IGC_MX_LIBRARY='/nonexistent/libigc_mx_ops.so')
    assert result.returncode == 1, result.stderr
    assert "ImportError: IGC_MX_LIBRARY='/nonexistent/libigc_mx_ops.so' is not a file" \
        in result.stderr
    assert 'scripts/setup.sh' in result.stderr


def test_foreign_library_raises_import_error():
    kernels_only = _library.find_library().with_name('libigc_kernels.so')
    result = run_python('import igc_mx', IGC_MX_LIBRARY=str(kernels_only))
    assert result.returncode == 1, result.stderr
    assert 'is not a usable igc_mx library' in result.stderr


def test_library_for_another_mxnet_raises_import_error():
    # The loader compares the library's build facts with the running mxnet
    # before MXNet sees the file.
    result = run_python("import mxnet; mxnet.__version__ = '1.8.0'; import igc_mx")
    assert result.returncode == 1, result.stderr
    assert 'built against MXNet version code 10901, but this process runs mxnet 1.8.0' \
        in result.stderr


def test_second_copy_from_another_path_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / 'libigc_mx_ops.so'
    shutil.copy(_library.find_library(), copy)
    monkeypatch.setenv('IGC_MX_LIBRARY', str(copy))
    with pytest.raises(ImportError, match='refusing to load a second copy'):
        _library.ensure_loaded()
    monkeypatch.delenv('IGC_MX_LIBRARY')
    assert _library.ensure_loaded() == _library.find_library()  # same path: a no-op


def test_pinned_inplace_sum_cap_warns():
    result = run_python('import igc_mx', MXNET_EXEC_INPLACE_GRAD_SUM_CAP='8')
    assert result.returncode == 0, result.stderr
    assert 'MXNET_EXEC_INPLACE_GRAD_SUM_CAP=8 is set' in result.stderr
