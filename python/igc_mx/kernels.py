"""ctypes binding of the kernel libraries: every entry point of
src/operator/*_kernels.h, typed once, for tests and benchmarks. Importing this
module needs neither MXNet nor a library.

- ``load(path=None)``: libigc_kernels.so (CPU kernels, and the CUDA ones in a CUDA
  build). With ``path``, that library becomes the one the functions below use by
  default; without, the one in use, else the one ``_locate`` finds (installed
  beside the op library, or $IGC_KERNELS_LIBRARY), e.g. a CMake build on a GPU
  machine without MXNet.
- ``load_emulated(path=None)``: libigc_kernels_emulated.so, whose CUDA entry points
  run the CUDA kernels on the CPU (src/operator/cuda_emulation.h), with the
  emulation's fault controls. Its kernels may touch only the arrays of the call:
  the functions below register them with the emulation (by role: 'data', 'weight',
  'out', 'workspace', ...), which checks every access against them.

The functions take arrays that expose a pointer: numpy arrays (CPU, and the
emulated "device"), or PyTorch tensors (a real GPU). ``device`` is 'cpu' or
'cuda'; a failing call raises ValueError with the kernel's status text.
"""
import contextlib
import ctypes
import functools
from pathlib import Path

from ._locate import KERNELS_HINT, find_kernels_library

#: element type codes of igc_common.h (MXNet's MXDType numbering)
DTYPE_CODES = {'float32': 0, 'float64': 1, 'float16': 2}
#: status codes of igc_common.h
IGC_CUDA_ERROR = 4

PASSES = ('forward', 'backward_data', 'backward_weight')
#: the three passes of the fused interleaved conv: (a, b) -> c
CONV_PASSES = {'forward': 'igc_interleaved_conv_forward_cpu',             # data, weight -> out
               'backward_data': 'igc_interleaved_conv_backward_data_cpu',  # dy, weight -> dx
               'backward_weight': 'igc_interleaved_conv_backward_weight_cpu'}  # dy, data -> dw
GROUP_CONV_PASSES = PASSES
#: the arrays (a, b, c) of each pass of both convolutions, by role
_ROLES = {'forward': ('data', 'weight', 'out'),
          'backward_data': ('out_grad', 'weight', 'data_grad'),
          'backward_weight': ('out_grad', 'data', 'weight_grad')}


class ConvGeometry(ctypes.Structure):
    """igc_group_conv_geometry of group_conv_kernels.h."""
    _fields_ = [(name, ctypes.c_int64) for name in (
        'batch', 'channels', 'height', 'width', 'filters', 'groups',
        'kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w')]


_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_GEOMETRY = ctypes.POINTER(ConvGeometry)
# name -> (restype, argtypes); '{device}' entries exist for cpu, and cuda where built.
_SIGNATURES = {
    'igc_status_string': (ctypes.c_char_p, [_INT]),
    'igc_last_cuda_error': (ctypes.c_char_p, []),
    'igc_cpu_isa': (ctypes.c_char_p, []),
    'igc_dtype_size': (_INT, [_INT]),
    'igc_group_conv_out_size': (_I64, [_I64] * 4),
    'igc_group_conv_check': (_INT, [_GEOMETRY, _INT]),
    'igc_reorder_cpu': (_INT, [_P, _P] + [_I64] * 4 + [_INT]),
    'igc_reorder_cuda': (_INT, [_P, _P] + [_I64] * 4 + [_INT, _P]),
    'igc_interleaved_conv_backward_weight_cuda_workspace': (_I64, [_I64] * 5 + [_INT]),
    'igc_group_conv_backward_weight_cuda_workspace': (_I64, [_GEOMETRY, _INT]),
    # the emulated library's device buffers (absent elsewhere)
    'igc_emu_device_buffer': (_INT, [_P, _I64, _I64, ctypes.c_char_p]),
    'igc_emu_forget_buffers': (None, []),
}
for _name in PASSES:
    _SIGNATURES[f'igc_interleaved_conv_{_name}_cpu'] = (_INT, [_P] * 3 + [_I64] * 5 + [_INT])
    _SIGNATURES[f'igc_group_conv_{_name}_cpu'] = (_INT, [_GEOMETRY] + [_P] * 3 + [_INT])
    _workspace = [_P, _I64] if _name == 'backward_weight' else []
    _SIGNATURES[f'igc_interleaved_conv_{_name}_cuda'] = (
        _INT, [_P] * 3 + [_I64] * 5 + [_INT] + _workspace + [_P])
    _SIGNATURES[f'igc_group_conv_{_name}_cuda'] = (
        _INT, [_GEOMETRY] + [_P] * 3 + [_INT] + _workspace + [_P])
_EMULATION_SIGNATURES = {
    'igc_emu_drop_barrier': (None, [ctypes.c_char_p, _INT]),
    'igc_emu_skip_thread': (None, [ctypes.c_char_p, _I64, _I64]),
    'igc_emu_alias_thread': (None, [ctypes.c_char_p, _I64, _I64, _I64]),
    'igc_emu_trim_buffer': (None, [ctypes.c_char_p, _I64, _I64]),
    'igc_emu_trim_dynamic_shared': (None, [_I64]),
    'igc_emu_bug_test': (ctypes.c_char_p, [ctypes.c_char_p]),
    'igc_emu_cap_grid': (None, [_I64]),
    'igc_emu_barrier_hits': (_I64, [ctypes.c_char_p, _INT]),
    'igc_emu_reset': (None, []),
    'igc_emu_self_test': (ctypes.c_char_p, [ctypes.c_uint] * 6 + [_INT, _INT]),
    'igc_emu_plan_only': (None, [_INT]),
    'igc_emu_launches': (ctypes.c_char_p, []),
}


def _typed(lib, signatures):
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name, None)
        if fn is not None:  # the CUDA entry points exist only in CUDA or emulated builds
            fn.restype, fn.argtypes = restype, argtypes
    return lib


_current = None   # the library the functions below call when given none


def load(path=None):
    """The kernels library, its functions typed (see the top of this module)."""
    global _current
    if path is None:
        if _current is None:
            _current = _bind(find_kernels_library())
        return _current
    _current = _bind(_existing(path, 'load'))
    return _current


def load_emulated(path=None):
    """libigc_kernels_emulated.so (beside libigc_kernels.so unless ``path``): the CUDA
    entry points run on the CPU."""
    path = _existing(path, 'load_emulated') if path else \
        find_kernels_library().with_name('libigc_kernels_emulated.so')
    return _bind_emulated(path)


def _existing(path, function):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'igc_mx.kernels.{function}: {path} is not a file. '
                                f'{KERNELS_HINT}')
    return path.resolve()


@functools.cache
def _bind(path):
    return _typed(ctypes.CDLL(str(path)), _SIGNATURES)


@functools.cache
def _bind_emulated(path):
    return _typed(_bind(path), _EMULATION_SIGNATURES)


def status_string(status, lib=None):
    return (lib or load()).igc_status_string(status).decode()


def _pointer(array):
    if array is None:
        return None
    if hasattr(array, 'data_ptr'):          # torch.Tensor
        return array.data_ptr()
    return array.ctypes.data               # numpy.ndarray


def _extent(array):
    """(bytes, bytes per element) of a numpy array or torch tensor."""
    if hasattr(array, 'element_size'):     # torch.Tensor
        return array.numel() * array.element_size(), array.element_size()
    return array.nbytes, array.dtype.itemsize


@contextlib.contextmanager
def _device_buffers(lib, device, **arrays):
    """On the emulated device, the arrays of one call, registered by role as its
    device buffers for the duration of the call (a real GPU library has no such
    entry point: nothing to do)."""
    register = getattr(lib, 'igc_emu_device_buffer', None) if device == 'cuda' else None
    if register is None:
        yield
        return
    try:
        for role, array in arrays.items():
            if array is not None:
                register(_pointer(array), *_extent(array), role.encode())
        yield
    finally:
        lib.igc_emu_forget_buffers()


def dtype_code(array):
    name = str(array.dtype).replace('torch.', '')
    if name not in DTYPE_CODES:
        raise ValueError(f'unsupported dtype {name}: expected one of {sorted(DTYPE_CODES)}')
    return DTYPE_CODES[name]


def _check(lib, status, what):
    if status:
        text = status_string(status, lib)
        if status == IGC_CUDA_ERROR:
            text += ': ' + lib.igc_last_cuda_error().decode()
        raise ValueError(f'{what}: status {status} ({text})')


def _device_args(device, workspace, stream, pass_name):
    """The trailing arguments of a CUDA entry point; none on the CPU."""
    if device == 'cpu':
        return ()
    if device != 'cuda':
        raise ValueError(f"device={device!r}: expected 'cpu' or 'cuda'")
    extra = ()
    if pass_name == 'backward_weight':
        size = 0 if workspace is None else workspace.nbytes if hasattr(workspace, 'nbytes') \
            else workspace.numel() * workspace.element_size()
        extra = (_pointer(workspace), size)
    return extra + (stream,)


def reorder(src, dst, branch_factor, device='cpu', lib=None, stream=None):
    """Reorder ``src`` (N, C, ...) into ``dst``; raises on error."""
    lib = lib or load()
    inner = 1
    for d in src.shape[2:]:
        inner *= int(d)
    fn = getattr(lib, f'igc_reorder_{device}')
    with _device_buffers(lib, device, src=src, dst=dst):
        status = fn(_pointer(src), _pointer(dst), src.shape[0], src.shape[1], branch_factor,
                    inner, dtype_code(src), *(() if device == 'cpu' else (stream,)))
    _check(lib, status, f'igc_reorder_{device}(branch_factor={branch_factor}, '
                        f'shape={tuple(src.shape)})')


def interleaved_conv(pass_name, a, b, c, primary, secondary, device='cpu', lib=None,
                     workspace=None, stream=None):
    """One pass of the fused conv: forward (data, weight -> out), backward_data
    (out_grad, weight -> data_grad), backward_weight (out_grad, data -> weight_grad).
    ``a`` is (N, C, H, W) in every pass. Raises on error."""
    lib = lib or load()
    n, channels, h, w = a.shape
    name = f'igc_interleaved_conv_{pass_name}_{device}'
    with _device_buffers(lib, device, workspace=workspace, **dict(zip(
            _ROLES[pass_name], (a, b, c), strict=True))):
        status = getattr(lib, name)(_pointer(a), _pointer(b), _pointer(c), n, channels, h * w,
                                    primary, secondary, dtype_code(a),
                                    *_device_args(device, workspace, stream, pass_name))
    _check(lib, status, f'{name}(L={primary}, M={secondary}, shape={tuple(a.shape)})')


def interleaved_conv_workspace(shape, primary, secondary, dtype, lib=None):
    """Bytes of device workspace the CUDA weight gradient needs (-1: bad arguments)."""
    n, channels, h, w = shape
    return (lib or load()).igc_interleaved_conv_backward_weight_cuda_workspace(
        n, channels, h * w, primary, secondary, DTYPE_CODES[dtype])


def conv_geometry(data_shape, weight_shape, groups, stride=(1, 1), pad=(0, 0)):
    n, c, h, w = data_shape
    f, _, kh, kw = weight_shape
    return ConvGeometry(n, c, h, w, f, groups, kh, kw, *stride, *pad)


def group_conv(pass_name, geometry, a, b, out, dtype=None, device='cpu', lib=None,
               workspace=None, stream=None):
    """One pass (PASSES) of GroupConvolution; forward: (data, weight) -> out;
    backward_data: (out_grad, weight) -> data_grad; backward_weight: (out_grad,
    data) -> weight_grad. ``dtype`` defaults to that of ``out``. Raises on error."""
    lib = lib or load()
    code = DTYPE_CODES[dtype] if dtype else dtype_code(out)
    name = f'igc_group_conv_{pass_name}_{device}'
    with _device_buffers(lib, device, workspace=workspace, **dict(zip(
            _ROLES[pass_name], (a, b, out), strict=True))):
        status = getattr(lib, name)(ctypes.byref(geometry), _pointer(a), _pointer(b),
                                    _pointer(out), code,
                                    *_device_args(device, workspace, stream, pass_name))
    _check(lib, status, name)


def group_conv_workspace(geometry, dtype, lib=None):
    """Bytes of device workspace the CUDA weight gradient needs (-1: bad arguments)."""
    return (lib or load()).igc_group_conv_backward_weight_cuda_workspace(
        ctypes.byref(geometry), DTYPE_CODES[dtype])


def cpu_isa():
    """The instruction-set variant the direct CPU kernels run here."""
    return load().igc_cpu_isa().decode()
