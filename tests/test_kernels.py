"""The Reorder CPU kernel through its C ABI alone (libigc_kernels.so, no MXNet):
the contract that the GPU harness in bench/gpu relies on as well."""
import ctypes

import numpy as np
import pytest

from igc_mx import kernels

from conftest import reorder_reference


def run(src, dst, branch_factor, dtype_code=None, batch=None, channels=None, inner=None):
    lib = kernels.load()
    return lib.igc_reorder_cpu(
        src.ctypes.data_as(ctypes.c_void_p) if src is not None else None,
        dst.ctypes.data_as(ctypes.c_void_p) if dst is not None else None,
        src.shape[0] if batch is None else batch,
        src.shape[1] if channels is None else channels,
        branch_factor,
        int(np.prod(src.shape[2:])) if inner is None else inner,
        kernels.DTYPE_CODES[src.dtype.name] if dtype_code is None else dtype_code)


@pytest.mark.parametrize('dtype', ['float32', 'float64', 'float16'])
@pytest.mark.parametrize('shape,branch_factor', [
    ((2, 12, 5, 7), 3), ((1, 64, 32, 32), 8), ((300, 96), 4), ((4, 6, 2, 3, 2), 6),
    ((8, 256, 14, 14), 16),  # large enough for the OpenMP path
])
def test_kernel_matches_numpy(dtype, shape, branch_factor):
    src = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    dst = np.full_like(src, np.nan)
    kernels.reorder(src, dst, branch_factor)
    np.testing.assert_array_equal(dst, reorder_reference(src, branch_factor))


def test_inverse_branch_factor_undoes_the_permutation():
    src = np.random.default_rng(1).standard_normal((3, 20, 9)).astype('float32')
    mid, back = np.empty_like(src), np.empty_like(src)
    kernels.reorder(src, mid, 4)
    kernels.reorder(mid, back, 5)
    np.testing.assert_array_equal(back, src)


@pytest.mark.parametrize('kwargs,status', [
    ({'branch_factor': 5}, 1),               # 12 channels not divisible by 5
    ({'branch_factor': 0}, 1),
    ({'branch_factor': 2, 'batch': -1}, 1),
    ({'branch_factor': 2, 'dtype_code': 4}, 2),   # int32 is not a supported dtype
])
def test_bad_arguments_return_status(kwargs, status):
    src = np.zeros((2, 12, 3), dtype='float32')
    dst = np.ones_like(src)
    assert run(src, dst, **kwargs) == status
    assert np.all(dst == 1)  # nothing written
    assert kernels.status_string(status).startswith(('bad shape', 'unsupported dtype'))


def test_null_and_aliased_pointers_are_refused():
    src = np.zeros((2, 4, 3), dtype='float32')
    assert run(src, None, 2) == 3
    assert run(src, src, 2) == 3
    empty = np.zeros((0, 4, 3), dtype='float32')
    assert run(empty, None, 2) == 0  # nothing to do, nothing touched


def test_python_helper_raises_with_the_reason():
    src = np.zeros((2, 6, 3), dtype='float32')
    with pytest.raises(ValueError, match='branch_factor=4.*bad shape'):
        kernels.reorder(src, np.empty_like(src), 4)
    with pytest.raises(ValueError, match='int32'):
        kernels.reorder(src.astype('int32'), src.astype('int32'), 2)


# ---------------------------------------------------------------- fused interleaved conv


def conv_reference(x, w, L, M):
    """Reorder(L) -> 1x1 conv with M groups -> Reorder(M), in numpy."""
    n, c, h, wd = x.shape
    y = reorder_reference(x, L).reshape(n, M, c // M, h * wd)
    y = np.einsum('goi,ngip->ngop', w.reshape(M, c // M, c // M), y)
    return reorder_reference(y.reshape(n, c, h, wd), M)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_conv_kernels_match_numpy(dtype):
    L, M = 4, 2   # C/M = 8 = 2*L: two slabs per group
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 16, 5, 4)).astype(dtype)
    w = rng.standard_normal((16, 8, 1, 1)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, dx, dw = np.full_like(x, np.nan), np.full_like(x, np.nan), np.full_like(w, np.nan)
    kernels.interleaved_conv('forward', x, w, y, L, M)
    kernels.interleaved_conv('backward_data', dy, w, dx, L, M)
    kernels.interleaved_conv('backward_weight', dy, x, dw, L, M)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == 'float32' else dict(rtol=1e-12)
    np.testing.assert_allclose(y, conv_reference(x, w, L, M), **tol)
    # The op is linear in x: <dy, f(x)> = <dx, x> and = <dw, w> (f linear in w too).
    np.testing.assert_allclose((dx * x).sum(), (dy * conv_reference(x, w, L, M)).sum(), **tol)
    np.testing.assert_allclose((dw * w).sum(), (dy * conv_reference(x, w, L, M)).sum(), **tol)


def test_conv_kernel_statuses():
    x = np.ones((2, 8, 3, 3), 'float32')
    w = np.ones((8, 2, 1, 1), 'float32')
    y = np.ones_like(x)
    with pytest.raises(ValueError, match='L=3, M=4.*bad shape'):
        kernels.interleaved_conv('forward', x, w, y, 3, 4)
    with pytest.raises(ValueError, match='unsupported dtype'):
        kernels.interleaved_conv('forward', x.astype('float16'), w.astype('float16'),
                                     y.astype('float16'), 2, 4)
    assert np.all(y == 1)  # nothing written


def test_conv_weight_gradient_of_no_images_is_zero():
    dy = np.zeros((0, 8, 3, 3), 'float32')
    dw = np.ones((8, 2, 1, 1), 'float32')
    kernels.interleaved_conv('backward_weight', dy, dy, dw, 2, 4)
    np.testing.assert_array_equal(dw, 0)
