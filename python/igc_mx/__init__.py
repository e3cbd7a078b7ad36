"""igc_mx: Interleaved Group Convolutions (Zhang et al., ICCV 2017) on MXNet 1.9.1.

Importing the package loads the compiled operator library once, which makes
``mx.nd.Reorder`` and ``mx.sym.Reorder`` available (the original's operator, same
name and parameters, so its symbol files load unchanged), and
``InterleavedGroupConv``, the fused Reorder -> 1x1 group conv -> Reorder
(docs/fused.md; ``igc_mx.rewrite`` puts it into saved symbols), and
``GroupConvolution`` (docs/group_conv.md).

Without MXNet installed the package still imports, without the ops: the modules
that need no MXNet (``kernels``, ``recordio``, ``atomic`` and the dataset, curve and
launch tools) work, and the names that need MXNet raise ImportError. Setting
IGC_MX_NO_MXNET=1 does the same where MXNet is installed: processes that never use it
(e.g. igc-make-rec's workers) start without its import time.
"""
import os
import sys

from ._command_interrupts import quiet_startup_interrupts

quiet_startup_interrupts()   # before MXNet's import, the slow part of a command's start

__version__ = '0.1.0'
__all__ = ['build_info', 'conv_bn', 'igc_unit']
NO_MXNET_ENV = 'IGC_MX_NO_MXNET'


def _mxnet_installed():
    if os.environ.get(NO_MXNET_ENV) == '1':
        return False
    try:
        import mxnet  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != 'mxnet':
            raise
        return False
    return True


def _use_every_cpu():
    """MXNet 1.9.1 runs its operators on half the CPUs it sees on x86 unless OMP_NUM_THREADS
    says otherwise (it takes every other one for a hyper-thread), which on a virtual
    machine of 2 CPUs is one thread (docs/training.md has the cost). The setting counts
    only when it is made before MXNet is imported, so igc_mx makes it first, and leaves a
    value the user set alone."""
    if 'mxnet' not in sys.modules:
        os.environ.setdefault('OMP_NUM_THREADS', str(len(os.sched_getaffinity(0))))


_use_every_cpu()
HAS_MXNET = _mxnet_installed()

if HAS_MXNET:
    from ._library import build_info, ensure_loaded

    ensure_loaded()

    from .blocks import conv_bn, igc_unit
else:
    def __getattr__(name):
        if name in __all__ or name == 'ensure_loaded':
            why = (f'{NO_MXNET_ENV}=1 leaves unimported' if os.environ.get(NO_MXNET_ENV) == '1'
                   else 'is not installed (pip install mxnet==1.9.1)')
            raise ImportError(f'igc_mx.{name} needs MXNet, which {why}')
        raise AttributeError(f"module 'igc_mx' has no attribute {name!r}")
