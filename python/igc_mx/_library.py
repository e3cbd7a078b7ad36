"""Check and load the compiled operator library into MXNet, exactly once per process.

A second copy of the library loaded from another path is not refused by MXNet: it
registers the copy's ops over the first ones (once; a third load fails), so the process
would silently run whichever build came last. A damaged file mapped by the dynamic
loader kills the process (SIGBUS), and a library built against another MXNet can crash
it. So the checks here run before ``mx.library.load`` sees the file: the ELF file must
be complete, and its build facts, read from a section of the file (``_elf``), must match
the running MXNet. Finding the library (``_locate``) needs no MXNet.
"""
from pathlib import Path

import mxnet as mx

from ._elf import ElfError, SharedLibrary
from ._locate import BUILD_HINT, ENV_OVERRIDE, LIBRARY_NAME, find_library

__all__ = ['BUILD_HINT', 'ENV_OVERRIDE', 'LIBRARY_NAME', 'build_info', 'check_compatible',
           'ensure_loaded', 'find_library', 'read_build_info']

# Process-wide record of what was loaded, kept on the mxnet module so that every
# copy of igc_mx in the process (e.g. a source tree and an installed one) sees it.
_MARKER = '_igc_mx_loaded_library'


def _mxnet_version_code():
    major, minor, patch = (int(p) for p in mx.__version__.split('.')[:3])
    return major * 10000 + minor * 100 + patch


#: the ELF section that holds the library's build facts (src/operator/library.cc)
BUILD_INFO_SECTION = '.igc_mx_build_info'


def read_build_info(path):
    """The key=value facts the library was built with (see src/operator/library.cc),
    read from its ``.igc_mx_build_info`` section without loading it into this process.
    ImportError when the file is not a complete shared library for this machine, has no
    such section, or its facts are not ``key=value`` pairs."""
    def unusable(why):
        return ImportError(f"igc_mx: {path} is not a usable igc_mx library ({why}). "
                           f"{BUILD_HINT}")
    try:
        text = SharedLibrary(path).section(BUILD_INFO_SECTION)
    except (ElfError, OSError) as exc:
        raise unusable(exc) from None
    if text is None:
        raise unusable(f'it has no {BUILD_INFO_SECTION} section')
    text = text.split(b'\0', 1)[0]
    try:
        items = [item.split('=', 1) for item in text.decode('ascii').split(';')]
    except UnicodeDecodeError:
        items = [[]]
    if not all(len(item) == 2 and item[0] for item in items):
        raise unusable(f'its build facts {text[:200]!r} are not key=value pairs')
    return dict(items)


def check_compatible(path, info):
    try:
        built = int(info.get('mxnet_version', -1))
    except ValueError:
        built = -1
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
                f"to load a second copy from {path} (MXNet would register its ops over the "
                f"loaded ones). "
                f"Unset {ENV_OVERRIDE} or use one installation of igc_mx.")
        return Path(loaded)
    check_compatible(path, read_build_info(path))
    from . import _ops
    _ops.disable_inplace_grad_sum()
    try:
        mx.library.load(str(path), verbose=False)
    except mx.base.MXNetError as exc:
        raise ImportError(f"igc_mx: MXNet refused {path}: {exc}. {BUILD_HINT}") from exc
    except UnicodeDecodeError:   # MXNet's message quoted bytes of the damaged file
        raise ImportError(f"igc_mx: MXNet refused {path} with a message that is not "
                          f"text: the file is damaged. {BUILD_HINT}") from None
    setattr(mx, _MARKER, str(path))
    _ops.install_wrappers()
    _ops.install_bind_hooks()
    return path


def build_info():
    """Facts about the loaded library: its path, MXNet version code, CUDA support."""
    path = ensure_loaded()
    return {'path': str(path), **read_build_info(path)}
