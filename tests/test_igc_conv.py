"""InterleavedGroupConv (the fused Reorder -> 1x1 group conv -> Reorder) against the
unfused MXNet graph and numpy: values, both gradients, grad_req, errors."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (loads the op library)

TOL = {'float32': dict(rtol=1e-4, atol=1e-4), 'float64': dict(rtol=1e-10, atol=1e-10)}

# (N, C, H, W, L, M): C = L*M, plus M < C/L (several slabs per group, as in the first
# unit of a CIFAR resnet_igc stage), L = 1, M = 1, and sizes that use every thread.
CASES = [
    (2, 8, 3, 3, 2, 4),
    (3, 12, 5, 4, 4, 3),
    (2, 16, 4, 4, 4, 2),       # C/M = 8 = 2 * L: two slabs per group
    (1, 48, 6, 6, 4, 3),       # C/M = 16 = 4 * L
    (2, 6, 2, 5, 1, 6),
    (2, 6, 2, 5, 6, 1),
    (5, 64, 16, 16, 16, 4),    # large enough for the column-chunked parallel loops
    (1, 32, 20, 20, 8, 2),     # one image, few groups: the split-images weight gradient
    (3, 96, 7, 7, 24, 4),      # 7x7 maps (49 = 3 x 16 + 1): partial vectors at every row end
    (2, 80, 12, 11, 5, 8),     # K = 10: partial blocks of outputs and of dot products
    (3, 96, 5, 5, 3, 32),      # 32 groups: the weight gradient in one image block
]


def unfused(x, w, L, M):
    """The graph the op replaces, built from MXNet's own Convolution."""
    c = x.shape[1]
    y = mx.nd.Reorder(x, branch_factor=L)
    y = mx.nd.Convolution(y, w, kernel=(1, 1), num_filter=c, num_group=M, no_bias=True)
    return mx.nd.Reorder(y, branch_factor=M)


def numpy_reference(x, w, L, M):
    """The same computation written out with numpy's reshape and einsum."""
    n, c, h, wd = x.shape
    shuffled = x.reshape(n, L, c // L, h, wd).swapaxes(1, 2).reshape(n, M, c // M, h, wd)
    y = np.einsum('goi,ngihw->ngohw', w.reshape(M, c // M, c // M), shuffled)
    return y.reshape(n, M, c // M, h, wd).swapaxes(1, 2).reshape(n, c, h, wd)


def fused(x, w, L, M):
    return mx.nd.InterleavedGroupConv(x, w, primary_partition=L, secondary_partition=M)


def arrays(case, dtype, seed=0):
    n, c, h, wd, L, M = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((c, c // M, 1, 1)).astype(dtype)
    head = rng.standard_normal((n, c, h, wd)).astype(dtype)
    return x, w, head, L, M


def grads(op, x, w, head, L, M, dtype):
    xs, ws = mx.nd.array(x, dtype=dtype), mx.nd.array(w, dtype=dtype)
    xs.attach_grad()
    ws.attach_grad()
    with mx.autograd.record():
        y = op(xs, ws, L, M)
    y.backward(mx.nd.array(head, dtype=dtype))
    return y.asnumpy(), xs.grad.asnumpy(), ws.grad.asnumpy()


@pytest.mark.parametrize('path', ['default', 'blas', 'direct'])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('case', CASES)
def test_matches_unfused_graph(case, dtype, path, monkeypatch):
    # The CPU kernels pick BLAS GEMMs or direct loops by size; IGC_MX_IGC_CONV
    # (read at every call) forces each on every case.
    if path != 'default':
        monkeypatch.setenv('IGC_MX_IGC_CONV', path)
    x, w, head, L, M = arrays(case, dtype)
    got = grads(fused, x, w, head, L, M, dtype)
    want = grads(unfused, x, w, head, L, M, dtype)
    for name, g, r in zip(('output', 'data grad', 'weight grad'), got, want, strict=True):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, r, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize('case', CASES[:4])
def test_forward_matches_numpy(case):
    x, w, _, L, M = arrays(case, 'float64')
    y = fused(mx.nd.array(x, dtype='float64'), mx.nd.array(w, dtype='float64'), L, M)
    np.testing.assert_allclose(y.asnumpy(), numpy_reference(x, w, L, M), rtol=1e-12,
                               atol=1e-12)


def test_numeric_gradient():
    data, weight = mx.sym.Variable('data'), mx.sym.Variable('weight')
    sym = mx.sym.InterleavedGroupConv(data, weight, primary_partition=2,
                                      secondary_partition=3)
    x, w, _, _, _ = arrays((2, 6, 3, 2, 2, 3), 'float64')
    mx.test_utils.check_numeric_gradient(sym, {'data': x, 'weight': w}, dtype=np.float64,
                                         rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- grad_req


def test_imperative_grad_req_add_accumulates():
    x, w, head, L, M = arrays((2, 12, 3, 3, 4, 3), 'float64')
    _, dx, dw = grads(fused, x, w, head, L, M, 'float64')
    xs, ws = mx.nd.array(x, dtype='float64'), mx.nd.array(w, dtype='float64')
    xs.attach_grad(grad_req='add')
    ws.attach_grad(grad_req='add')
    for _ in range(3):
        with mx.autograd.record():
            y = fused(xs, ws, L, M)
        y.backward(mx.nd.array(head, dtype='float64'))
    np.testing.assert_allclose(xs.grad.asnumpy(), 3 * dx, rtol=1e-12)
    np.testing.assert_allclose(ws.grad.asnumpy(), 3 * dw, rtol=1e-12)


@pytest.mark.parametrize('grad_req', ['write', 'add', 'null'])
def test_executor_grad_req(grad_req):
    x, w, head, L, M = arrays((2, 8, 3, 3, 2, 4), 'float64')
    data, weight = mx.sym.Variable('data'), mx.sym.Variable('w')

    def run(sym, steps):
        exe = sym.simple_bind(mx.cpu(), data=x.shape, w=w.shape, grad_req=grad_req,
                              type_dict={'data': 'float64', 'w': 'float64'})
        exe.arg_dict['data'][:] = x
        exe.arg_dict['w'][:] = w
        for g in exe.grad_arrays:
            if g is not None:
                g[:] = 1.0   # 'add' must keep what is there
        for _ in range(steps):
            exe.forward(is_train=True)
            exe.backward(mx.nd.array(head, dtype='float64'))
        return exe.outputs[0].asnumpy(), [g.asnumpy() for g in exe.grad_arrays if g is not None]

    fused_sym = mx.sym.InterleavedGroupConv(data, weight, primary_partition=L,
                                            secondary_partition=M)
    y = mx.sym.Reorder(data, branch_factor=L)
    y = mx.sym.Convolution(y, weight, kernel=(1, 1), num_filter=8, num_group=M, no_bias=True)
    unfused_sym = mx.sym.Reorder(y, branch_factor=M)
    got_y, got_g = run(fused_sym, 2)
    want_y, want_g = run(unfused_sym, 2)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-12, atol=1e-12)
    assert len(got_g) == len(want_g) == (0 if grad_req == 'null' else 2)
    for g, r in zip(got_g, want_g, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_symbol_infers_weight_shape_and_round_trips_json():
    data = mx.sym.Variable('data')
    sym = mx.sym.InterleavedGroupConv(data, mx.sym.Variable('w'), primary_partition=4,
                                      secondary_partition=2, name='igc')
    args, outs, _ = sym.infer_shape(data=(2, 16, 5, 5))
    assert dict(zip(sym.list_arguments(), args, strict=True))['w'] == (16, 8, 1, 1)
    assert outs == [(2, 16, 5, 5)]
    again = mx.sym.load_json(sym.tojson())
    assert again.infer_shape(data=(2, 16, 5, 5))[1] == outs

# ---------------------------------------------------------------- errors


@pytest.mark.parametrize('params,x_shape,w_shape,expected', [
    (dict(primary_partition=3, secondary_partition=2), (1, 8, 2, 2), (8, 4, 1, 1),
     'C=8 is not divisible by primary_partition=3'),
    (dict(primary_partition=2, secondary_partition=3), (1, 8, 2, 2), (8, 4, 1, 1),
     'C=8 is not divisible by secondary_partition=3'),
    (dict(primary_partition=4, secondary_partition=4), (1, 8, 2, 2), (8, 2, 1, 1),
     'C/M=2 (C=8, secondary_partition=4) is not a multiple of primary_partition=4'),
    (dict(primary_partition=2, secondary_partition=4), (1, 8, 2, 2), (8, 4, 1, 1),
     'weight shape (8,4,1,1) does not match (C, C/secondary_partition, 1, 1) = (8,2,1,1)'),
    (dict(primary_partition=2, secondary_partition=4), (8, 4), (8, 2, 1, 1),
     'data must be 4-dimensional'),
    (dict(primary_partition=0, secondary_partition=4), (1, 8, 2, 2), (8, 2, 1, 1),
     'primary_partition=0 is out of range'),
    (dict(primary_partition=2, secondary_partition='x'), (1, 8, 2, 2), (8, 2, 1, 1),
     "secondary_partition='x' is not an integer"),
    (dict(primary_partition=2), (1, 8, 2, 2), (8, 2, 1, 1),
     "missing required parameter 'secondary_partition'"),
    (dict(primary_partition=2, secondary_partition=4, groups=2), (1, 8, 2, 2), (8, 2, 1, 1),
     "unknown parameter 'groups'"),
])
def test_bad_input_raises_mxnet_error(params, x_shape, w_shape, expected):
    with pytest.raises(mx.base.MXNetError, match=expected.replace('(', r'\(')
                       .replace(')', r'\)').replace('*', r'\*')):
        mx.nd.InterleavedGroupConv(mx.nd.ones(x_shape), mx.nd.ones(w_shape),
                                   **params).wait_to_read()


@pytest.mark.parametrize('dtypes,expected', [
    (('float16', 'float16'), 'float16 on GPU'),
    (('int32', 'int32'), 'unsupported dtype int32'),
    (('float32', 'float64'), 'dtypes differ'),
])
def test_bad_dtypes_raise(dtypes, expected):
    x = mx.nd.ones((1, 8, 2, 2), dtype=dtypes[0])
    w = mx.nd.ones((8, 2, 1, 1), dtype=dtypes[1])
    with pytest.raises(mx.base.MXNetError, match=expected):
        mx.nd.InterleavedGroupConv(x, w, primary_partition=2,
                                   secondary_partition=4).wait_to_read()


def test_symbolic_errors_raise_at_shape_inference():
    sym = mx.sym.InterleavedGroupConv(mx.sym.Variable('data'), mx.sym.Variable('w'),
                                      primary_partition=3, secondary_partition=2)
    with pytest.raises(mx.base.MXNetError, match='C=8 is not divisible by primary_partition=3'):
        sym.infer_shape(data=(1, 8, 2, 2))


def test_missing_blas_is_a_clear_error():
    code = ('import mxnet as mx, igc_mx\n'
            'mx.nd.InterleavedGroupConv(mx.nd.ones((1, 4, 2, 2)), mx.nd.ones((4, 2, 1, 1)), '
            'primary_partition=2, secondary_partition=2).wait_to_read()')
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, 'IGC_BLAS_LIBRARY': '/nonexistent.so',
                                           'IGC_MX_IGC_CONV': 'blas'})
    assert run.returncode != 0
    assert 'no BLAS' in run.stderr and 'IGC_BLAS_LIBRARY' in run.stderr
    # The direct kernels need no BLAS: forced onto them, the same call runs.
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, 'IGC_BLAS_LIBRARY': '/nonexistent.so',
                                           'IGC_MX_IGC_CONV': 'direct'})
    assert run.returncode == 0, run.stderr
