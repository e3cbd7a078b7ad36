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


@pytest.mark.parametrize('fraction', [0.5, 0.9999])
def test_truncated_library_is_an_import_error_not_a_crash(tmp_path, fraction):
    data = _library.find_library().read_bytes()
    cut = tmp_path / 'libigc_mx_ops.so'
    cut.write_bytes(data[:int(len(data) * fraction)])
    result = run_python('import igc_mx', IGC_MX_LIBRARY=str(cut))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f'ImportError: igc_mx: {cut} is not a usable igc_mx library (' in result.stderr
    assert 'the file is cut short' in result.stderr


def test_library_with_a_damaged_dynamic_table_is_an_import_error(tmp_path):
    """The dynamic table is what the loader reads first; zeroed, dlopen crashes."""
    from igc_mx import _elf
    data = bytearray(_library.find_library().read_bytes())
    header = _elf.HEADER.unpack_from(data)
    phoff, phnum = header[5], header[10]
    for i in range(phnum):
        p_type, _, offset, _, _, filesz, _, _ = _elf.PROGRAM.unpack_from(
            data, phoff + i * _elf.PROGRAM.size)
        if p_type == _elf.PT_DYNAMIC:
            data[offset:offset + filesz] = bytes(filesz)
            break
    else:
        pytest.fail('the built library has no dynamic segment')
    damaged = tmp_path / 'libigc_mx_ops.so'
    damaged.write_bytes(bytes(data))
    result = run_python('import igc_mx', IGC_MX_LIBRARY=str(damaged))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'ImportError: igc_mx: {damaged} is not a usable igc_mx library')
    assert 'the dynamic table names no symbol table: the file is damaged' in last


def test_what_mxnet_does_with_a_second_copy(tmp_path):
    """Why igc_mx refuses a second copy: MXNet registers the copy's ops over the loaded
    ones (no abort), and refuses a third."""
    copies = []
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        copies.append(tmp_path / name / 'libigc_mx_ops.so')
        shutil.copy(_library.find_library(), copies[-1])
    result = run_python(
        'import mxnet as mx, igc_mx, sys\n'
        f'mx.library.load({str(copies[0])!r}, verbose=False)\n'
        'print("second copy loaded", flush=True)\n'
        f'try:\n    mx.library.load({str(copies[1])!r}, verbose=False)\n'
        'except mx.base.MXNetError as e:\n    print(str(e).strip().splitlines()[-1])\n'
        'print(mx.nd.Reorder(mx.nd.arange(4).reshape((1, 4)), branch_factor=2))\n')
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == 'second copy loaded'
    assert lines[1].endswith('Attribute FResourceRequest of operator Reorder is already '
                             'registered with same plevel=11')
    assert '[[0. 2. 1. 3.]]' in result.stdout


# The build-facts section as a test library declares it.
_SECTION = '__attribute__((used, section(".igc_mx_build_info"))) const char facts[]'

BUILD_INFO_C = {
    'no pairs': f'{_SECTION} = "garbage";',
    'empty': f'{_SECTION} = "";',
    'not text': f'{_SECTION} = "mxnet_version=\\xff\\xfe";',
    'not a number': f'{_SECTION} = "mxnet_version=x;cuda=0";',
    'no section': 'const char igc_mx_build_facts[] = "mxnet_version=10901";',
}


@pytest.mark.parametrize('case,message', [
    ('no pairs', "its build facts b'garbage' are not key=value pairs"),
    ('empty', "its build facts b'' are not key=value pairs"),
    ('not text', "its build facts b'mxnet_version=\\xff\\xfe' are not key=value pairs"),
    ('not a number', 'was built against MXNet version code -1'),
    ('no section', 'it has no .igc_mx_build_info section'),
])
def test_library_with_bad_build_facts_is_an_import_error(tmp_path, case, message):
    compiler = shutil.which('cc') or shutil.which('gcc')
    if compiler is None:
        pytest.skip('no C compiler (cc) to build the test libraries')
    source = tmp_path / 'lib.c'
    source.write_text(BUILD_INFO_C[case] + '\n')
    lib = tmp_path / 'libigc_mx_ops.so'
    subprocess.run([compiler, '-O2', '-shared', '-fPIC',
                    str(source), '-o', str(lib)], check=True, capture_output=True)
    result = run_python('import igc_mx', IGC_MX_LIBRARY=str(lib))
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: igc_mx: ') and message in last, last


def test_import_uses_every_cpu_unless_told():
    code = 'import os, igc_mx; print(os.environ.get("OMP_NUM_THREADS", "unset"))'
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}

    def threads(code, **extra):
        proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              env={**env, **extra}, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip()
    assert threads(code) == str(len(os.sched_getaffinity(0)))
    assert threads(code, OMP_NUM_THREADS='1') == '1'
    # imported after mxnet, too late to count: igc_mx leaves the environment alone
    assert threads('import mxnet; ' + code) == 'unset'
