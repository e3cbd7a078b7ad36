"""Where the compiled libraries are, found without importing MXNet.

``libigc_mx_ops.so`` (the MXNet extension) and ``libigc_kernels.so`` (the same kernels
behind a plain C ABI, no MXNet) are installed together in ``igc_mx/lib``. Overrides:
``IGC_MX_LIBRARY`` names the op library (the kernels library beside it is used too);
``IGC_KERNELS_LIBRARY`` names the kernels library alone, e.g. one built by CMake with
``-DIGC_KERNELS_ONLY=ON`` on a machine without MXNet.
"""
import os
import sys
import sysconfig
from pathlib import Path

LIBRARY_NAME = 'libigc_mx_ops.so'
KERNELS_LIBRARY_NAME = 'libigc_kernels.so'
ENV_OVERRIDE = 'IGC_MX_LIBRARY'
KERNELS_ENV = 'IGC_KERNELS_LIBRARY'

BUILD_HINT = ("Build it with the README's set-up (scripts/setup.sh), or "
              "`pip install .` in the igc-mx checkout, or point "
              f"{ENV_OVERRIDE} at a libigc_mx_ops.so built by CMake.")
KERNELS_HINT = ("Build it with scripts/setup.sh or `pip install .`, or alone with CMake "
                "(cmake -S . -B build -DIGC_KERNELS_ONLY=ON && cmake --build build), and point "
                f"{KERNELS_ENV} at it or pass its path to igc_mx.kernels.load(path).")


def package_lib_dirs():
    """The ``lib`` folders where the package's libraries may be installed. An editable
    install keeps the Python files in the source tree and the libraries in
    site-packages/igc_mx/lib."""
    here = Path(__file__).resolve().parent
    package = sys.modules.get(__package__)
    dirs = [here, *map(Path, getattr(package, '__path__', ())),
            *(Path(sysconfig.get_path(k)) / 'igc_mx' for k in ('platlib', 'purelib'))]
    return [d / 'lib' for d in dirs]


def _override(variable, hint):
    value = os.environ.get(variable)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ImportError(f'{variable}={value!r} is not a file. {hint}')
    return path.resolve()


def find_library():
    """Path of the op library to load: $IGC_MX_LIBRARY, else the one installed in the package."""
    override = _override(ENV_OVERRIDE, BUILD_HINT)
    if override:
        return override
    for directory in package_lib_dirs():
        candidate = directory / LIBRARY_NAME
        if candidate.is_file():
            return candidate.resolve()
    raise ImportError(f'igc_mx: the operator library {LIBRARY_NAME} was not found in '
                      f'{package_lib_dirs()[0]}. {BUILD_HINT}')


def find_kernels_library():
    """Path of libigc_kernels.so: $IGC_KERNELS_LIBRARY, else the one beside
    $IGC_MX_LIBRARY, else the one installed in the package."""
    override = _override(KERNELS_ENV, KERNELS_HINT)
    if override:
        return override
    candidates = [d / KERNELS_LIBRARY_NAME for d in package_lib_dirs()]
    ops = _override(ENV_OVERRIDE, BUILD_HINT)
    if ops:
        candidates.insert(0, ops.with_name(KERNELS_LIBRARY_NAME))
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ImportError(f'igc_mx: the kernels library {KERNELS_LIBRARY_NAME} was not found in '
                      f'{candidates[0].parent}. {KERNELS_HINT}')
