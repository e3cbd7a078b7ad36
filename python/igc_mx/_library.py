"""Check and load the compiled operator library into MXNet, exactly once per process.

MXNet aborts the whole process if two copies of one op library are loaded from
different paths, and a library built against another MXNet can crash it, so the
checks here run before ``mx.library.load`` sees the file. Finding the library
(``_locate``) needs no MXNet.
"""
import ctypes
from pathlib import Path

import mxnet as mx

from ._locate import BUILD_HINT, ENV_OVERRIDE, LIBRARY_NAME, find_library

__all__ = ['BUILD_HINT', 'ENV_OVERRIDE', 'LIBRARY_NAME', 'build_info', 'check_compatible',
           'ensure_loaded', 'find_library', 'read_build_info']

# Process-wide record of what was loaded, kept on the mxnet module so that every
# copy of igc_mx in the process (e.g. a source tree and an installed one) sees it.
_MARKER = '_igc_mx_loaded_library'


def _mxnet_version_code():
    major, minor, patch = (int(p) for p in mx.__version__.split('.')[:3])
    return major * 10000 + minor * 100 + patch


def read_build_info(path):
    """The key=value facts the library was built with (see src/operator/library.cc)."""
    try:
        lib = ctypes.CDLL(str(path))
        info = lib.igc_mx_build_info
    except (OSError, AttributeError) as exc:
        raise ImportError(f"igc_mx: {path} is not a usable igc_mx library ({exc}). "
                          f"{BUILD_HINT}") from exc
    info.restype = ctypes.c_char_p
    return dict(item.split('=', 1) for item in info().decode().split(';'))


def check_compatible(path, info):
    built = int(info.get('mxnet_version', -1))
    running = _mxnet_version_code()
    if built != running:
        raise ImportError(f"igc_mx: {path} was built against MXNet version code {built}, "
                          f"but this process runs mxnet {mx.__version__} ({running}). "
                          f"Rebuild it against the installed mxnet. {BUILD_HINT}")


def ensure_loaded():
    """Load the library if no copy is loaded yet; return the path in use."""
    loaded = getattr(mx, _MARKER, None)
    path = find_library()
    if loaded is not None:
        if Path(loaded) != path:
            raise ImportError(
                f"igc_mx: the operator library is already loaded from {loaded}; refusing "
                f"to load a second copy from {path} (MXNet aborts the process on that). "
                f"Unset {ENV_OVERRIDE} or use one installation of igc_mx.")
        return Path(loaded)
    check_compatible(path, read_build_info(path))
    from . import _ops
    _ops.disable_inplace_grad_sum()
    try:
        mx.library.load(str(path), verbose=False)
    except mx.base.MXNetError as exc:
        raise ImportError(f"igc_mx: MXNet refused {path}: {exc}. {BUILD_HINT}") from exc
    setattr(mx, _MARKER, str(path))
    _ops.install_wrappers()
    return path


def build_info():
    """Facts about the loaded library: its path, MXNet version code, CUDA support."""
    path = ensure_loaded()
    return {'path': str(path), **read_build_info(path)}
