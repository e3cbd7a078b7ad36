"""ctypes access to libigc_kernels.so: the kernels without MXNet, for tests and
benchmarks. Importing this module needs neither MXNet nor the library; ``load``
finds the library (see ``_locate``: installed beside the op library, or
$IGC_KERNELS_LIBRARY) or takes its path, e.g. a CMake build on a GPU machine."""
import ctypes
import functools
from pathlib import Path

from ._compat import renamed_argument
from ._locate import KERNELS_HINT, find_kernels_library

# Element type codes of reorder_kernels.h (MXNet's MXDType numbering).
DTYPE_CODES = {'float32': 0, 'float64': 1, 'float16': 2}
_ARGTYPES = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
             ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
# igc_conv_kernels.h: (a, b, c, batch, channels, inner, L, M, dtype).
_CONV_ARGTYPES = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 5 + [ctypes.c_int]
#: the three passes of the fused interleaved conv: (a, b) -> c
CONV_PASSES = {'forward': 'igc_interleaved_conv_forward_cpu',             # data, weight -> out
               'backward_data': 'igc_interleaved_conv_backward_data_cpu',  # dy, weight -> dx
               'backward_weight': 'igc_interleaved_conv_backward_weight_cpu'}  # dy, data -> dw
#: the three passes of GroupConvolution: igc_group_conv_<pass>_cpu
GROUP_CONV_PASSES = ('forward', 'backward_data', 'backward_weight')


class ConvGeometry(ctypes.Structure):
    """igc_conv_geometry of group_conv_kernels.h."""
    _fields_ = [(name, ctypes.c_int64) for name in (
        'batch', 'channels', 'height', 'width', 'filters', 'groups',
        'kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w')]


_current = None   # the library the functions below call


def load(path=None):
    """The kernels library, its functions' signatures declared. With ``path`` (a
    libigc_kernels.so), that library becomes the one this module's functions use;
    without, the one in use, else the one ``_locate.find_kernels_library`` finds."""
    global _current
    if path is None:
        if _current is None:
            _current = _bind(find_kernels_library())
        return _current
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'igc_mx.kernels.load: {path} is not a file. {KERNELS_HINT}')
    _current = _bind(path.resolve())
    return _current


@functools.lru_cache(maxsize=None)
def _bind(path):
    lib = ctypes.CDLL(str(path))
    lib.igc_reorder_cpu.argtypes = _ARGTYPES
    lib.igc_reorder_cpu.restype = ctypes.c_int
    for name in CONV_PASSES.values():
        getattr(lib, name).argtypes = _CONV_ARGTYPES
        getattr(lib, name).restype = ctypes.c_int
    for name in GROUP_CONV_PASSES:
        fn = getattr(lib, f'igc_group_conv_{name}_cpu')
        fn.argtypes = [ctypes.POINTER(ConvGeometry), ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_void_p, ctypes.c_int]
        fn.restype = ctypes.c_int
    lib.igc_group_conv_cpu_isa.restype = ctypes.c_char_p
    lib.igc_status_string.argtypes = [ctypes.c_int]
    lib.igc_status_string.restype = ctypes.c_char_p
    return lib


def status_string(status):
    return load().igc_status_string(status).decode()


def reorder_cpu(src, dst, branch_factor=None, *, groups=None):
    """Reorder(branch_factor) by the CPU kernel, on C-contiguous numpy arrays of shape
    (N, C, ...); raises on error. ``groups`` is the deprecated name of ``branch_factor``."""
    branch_factor = renamed_argument('reorder_cpu', 'branch_factor', branch_factor, 'groups',
                                     groups)
    if src.dtype.name not in DTYPE_CODES or dst.dtype != src.dtype or dst.shape != src.shape:
        raise ValueError(f'expected two arrays of one float dtype and shape, got '
                         f'{src.dtype}{src.shape} and {dst.dtype}{dst.shape}')
    inner = 1
    for d in src.shape[2:]:
        inner *= d
    status = load().igc_reorder_cpu(src.ctypes.data, dst.ctypes.data, src.shape[0],
                                    src.shape[1], branch_factor, inner,
                                    DTYPE_CODES[src.dtype.name])
    if status:
        raise ValueError(f'igc_reorder_cpu(branch_factor={branch_factor}, shape={src.shape}): '
                         f'{status_string(status)}')


def interleaved_conv_cpu(pass_name, a, b, c, primary_partition, secondary_partition=None, *,
                         groups=None):
    """One pass of the fused conv (see CONV_PASSES) with L = ``primary_partition`` and
    M = ``secondary_partition``, on C-contiguous numpy arrays. `a` is (N, C, H, W) in
    every pass (data or output gradient). Raises on error. ``groups`` is the
    deprecated name of ``secondary_partition``."""
    secondary_partition = renamed_argument('interleaved_conv_cpu', 'secondary_partition',
                                           secondary_partition, 'groups', groups)
    n, channels, h, w = a.shape
    fn = getattr(load(), CONV_PASSES[pass_name])
    status = fn(a.ctypes.data, b.ctypes.data, c.ctypes.data, n, channels, h * w,
                primary_partition, secondary_partition, DTYPE_CODES[a.dtype.name])
    if status:
        raise ValueError(f'{CONV_PASSES[pass_name]}(L={primary_partition}, '
                         f'M={secondary_partition}, '
                         f'shape={a.shape}): {status_string(status)}')


def group_conv_cpu_isa():
    """The instruction-set variant the CPU kernels run here."""
    return load().igc_group_conv_cpu_isa().decode()


def conv_geometry(data_shape, weight_shape, groups, stride=(1, 1), pad=(0, 0)):
    n, c, h, w = data_shape
    f, _, kh, kw = weight_shape
    return ConvGeometry(n, c, h, w, f, groups, kh, kw, *stride, *pad)


def group_conv_cpu(pass_name, geometry, a, b, out, dtype):
    """Run one pass (GROUP_CONV_PASSES) on C-contiguous numpy arrays; raises on error.

    forward: (data, weight) -> out; backward_data: (out_grad, weight) -> data_grad;
    backward_weight: (out_grad, data) -> weight_grad.
    """
    fn = getattr(load(), f'igc_group_conv_{pass_name}_cpu')
    pointers = [x.ctypes.data if x is not None else None for x in (a, b, out)]
    status = fn(ctypes.byref(geometry), *pointers, DTYPE_CODES[dtype])
    if status:
        raise ValueError(f'igc_group_conv_{pass_name}_cpu: status {status} '
                         f'({status_string(status)})')
