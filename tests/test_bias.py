"""The bias input (no_bias=False) and act_type='relu' of GroupConvolution and
InterleavedGroupConv, and InterleavedGroupConv's residual input (with_residual=True), against
MXNet's own ops (Convolution with a bias, broadcast_add, elemwise_add, relu): values,
every gradient, grad_req='add', symbols, finite differences, errors."""
import mxnet as mx
import numpy as np
import pytest
from test_group_conv import SHAPES, conv_params, out_shape
from test_igc_conv import CASES, unfused

import igc_mx  # noqa: F401  (loads the op library)

TOL = {'float32': dict(rtol=1e-4, atol=1e-4), 'float64': dict(rtol=1e-10, atol=1e-10)}
EPILOGUES = [dict(no_bias=False), dict(act_type='relu'), dict(no_bias=False, act_type='relu')]
EPILOGUE_IDS = ['bias', 'relu', 'bias_relu']
IGC_EPILOGUES = EPILOGUES + [dict(with_residual=True),
                             dict(no_bias=False, with_residual=True, act_type='relu')]
IGC_EPILOGUE_IDS = EPILOGUE_IDS + ['residual', 'bias_residual_relu']
GROUP_SHAPES = [SHAPES[0], SHAPES[3], SHAPES[10], SHAPES[14]]
IGC_CASES = [CASES[2], CASES[8], CASES[9]]     # slabs; 7x7 rows; partial blocks


def group_conv_reference(x, w, b, epilogue, **params):
    """Convolution with MXNet's own bias, then MXNet's relu."""
    y = (mx.nd.Convolution(x, w, b, no_bias=False, **params) if b is not None
         else mx.nd.Convolution(x, w, no_bias=True, **params))
    return mx.nd.relu(y) if epilogue.get('act_type') else y


def igc_reference(x, w, b, r, epilogue, L, M):
    """The unfused unit, a bias per output channel by broadcast_add, the residual by
    elemwise_add, then relu."""
    y = unfused(x, w, L, M)
    if b is not None:
        y = mx.nd.broadcast_add(y, b.reshape((1, -1, 1, 1)))
    if r is not None:
        y = y + r
    return mx.nd.relu(y) if epilogue.get('act_type') else y


def gradients(fn, arrays, head, grad_req='write', repeats=1):
    """Output and the gradients of every array of ``fn(*arrays)`` under autograd."""
    arrays = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for a in arrays:
        a.attach_grad(grad_req)
    for _ in range(repeats):
        with mx.autograd.record():
            out = fn(*arrays)
        out.backward(mx.nd.array(head, dtype=head.dtype))
    return [out.asnumpy()] + [a.grad.asnumpy() for a in arrays]


def draw(rng, dtype, *shapes):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def group_conv_case(shape, epilogue, dtype, seed=0):
    n, c, h, w, f, g, k, _, _ = shape
    rng = np.random.default_rng(seed)
    bias = epilogue.get('no_bias') is False
    x, wt, b, head = draw(rng, dtype, (n, c, h, w), (f, c // g, *k), (f,), out_shape(shape))
    arrays = [x, wt] + ([b] if bias else [])
    params = conv_params(shape)

    def ours(*a):
        return mx.nd.GroupConvolution(*a, **params, **epilogue)

    def theirs(*a):
        return group_conv_reference(a[0], a[1], a[2] if bias else None, epilogue, **params)
    return ours, theirs, arrays, head


def igc_case(case, epilogue, dtype, seed=0):
    n, c, h, w, L, M = case
    rng = np.random.default_rng(seed)
    bias, residual = epilogue.get('no_bias') is False, epilogue.get('with_residual', False)
    x, wt, b, r, head = draw(rng, dtype, (n, c, h, w), (c, c // M, 1, 1), (c,), (n, c, h, w),
                             (n, c, h, w))
    arrays = [x, wt] + ([b] if bias else []) + ([r] if residual else [])

    def ours(*a):
        return mx.nd.InterleavedGroupConv(*a, primary_partition=L, secondary_partition=M,
                                          **epilogue)

    def theirs(*a):
        return igc_reference(a[0], a[1], a[2] if bias else None, a[-1] if residual else None,
                             epilogue, L, M)
    return ours, theirs, arrays, head


def assert_same(ours, theirs, arrays, head, dtype, **kwargs):
    got = gradients(ours, arrays, head, **kwargs)
    want = gradients(theirs, arrays, head, **kwargs)
    names = ['output', 'data grad', 'weight grad', 'bias or residual grad', 'residual grad']
    for name, a, b in zip(names, got, want, strict=False):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('epilogue', EPILOGUES, ids=EPILOGUE_IDS)
@pytest.mark.parametrize('shape', GROUP_SHAPES, ids=[str(s[:6]) for s in GROUP_SHAPES])
def test_group_convolution_matches_mxnet(shape, epilogue, dtype):
    assert_same(*group_conv_case(shape, epilogue, dtype), dtype)


@pytest.mark.parametrize('path', ['blas', 'direct'])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('epilogue', IGC_EPILOGUES, ids=IGC_EPILOGUE_IDS)
@pytest.mark.parametrize('case', IGC_CASES, ids=[str(c) for c in IGC_CASES])
def test_interleaved_group_conv_matches_mxnet(case, epilogue, dtype, path, monkeypatch):
    monkeypatch.setenv('IGC_MX_IGC_CONV', path)
    assert_same(*igc_case(case, epilogue, dtype), dtype)


def test_relu_of_exact_zeros_passes_no_gradient():
    # the output is 0 where the bias cancels the sum: MXNet's relu passes no gradient there
    x = np.zeros((1, 4, 3, 3))
    w = np.ones((4, 2, 1, 1))
    b = np.array([0.0, -1.0, 2.0, 0.0])
    r = np.zeros((1, 4, 3, 3))
    r[0, 2] = -2.0
    head = np.ones((1, 4, 3, 3))
    ours, theirs, _, _ = igc_case((1, 4, 3, 3, 2, 2), IGC_EPILOGUES[4], 'float64')
    assert_same(ours, theirs, [x, w, b, r], head, 'float64')


@pytest.mark.parametrize('op', ['GroupConvolution', 'InterleavedGroupConv'])
def test_grad_req_add_accumulates(op):
    if op == 'GroupConvolution':
        args = group_conv_case(SHAPES[3], EPILOGUES[2], 'float64')
    else:
        args = igc_case(CASES[2], IGC_EPILOGUES[4], 'float64')
    assert_same(*args, 'float64', grad_req='add', repeats=3)


def test_numeric_gradients():
    data, weight, bias = mx.sym.var('data'), mx.sym.var('weight'), mx.sym.var('bias')
    rng = np.random.default_rng(3)
    x, w, wi, b, r = draw(rng, 'float64', (1, 4, 5, 4), (4, 2, 3, 3), (4, 2, 1, 1), (4,),
                          (1, 4, 5, 4))
    sym = mx.sym.GroupConvolution(data, weight, bias, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                                  num_filter=4, num_group=2, no_bias=False, act_type='relu')
    mx.test_utils.check_numeric_gradient(sym, {'data': x, 'weight': w, 'bias': b},
                                         dtype=np.float64, rtol=1e-5, atol=1e-7)
    sym = mx.sym.InterleavedGroupConv(data, weight, bias, mx.sym.var('residual'),
                                      primary_partition=2, secondary_partition=2, no_bias=False,
                                      with_residual=True, act_type='relu')
    mx.test_utils.check_numeric_gradient(sym, {'data': x, 'weight': wi, 'bias': b,
                                               'residual': r},
                                         dtype=np.float64, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('grad_req', ['write', 'add'])
def test_symbol_creates_the_bias_and_binds(grad_req):
    """mx.sym creates '<name>_bias' as Convolution does; an executor with grad_req
    'add' sums the bias gradient into what is there."""
    shape = SHAPES[1]
    params = conv_params(shape)
    sym = mx.sym.GroupConvolution(mx.sym.var('data'), name='u', no_bias=False,
                                  act_type='relu', **params)
    ref = mx.sym.relu(mx.sym.Convolution(mx.sym.var('data'), name='u', no_bias=False, **params))
    assert sym.list_arguments() == ref.list_arguments() == ['data', 'u_weight', 'u_bias']
    _, ours, _, head = group_conv_case(shape, EPILOGUES[2], 'float64')
    rng = np.random.default_rng(6)
    values = dict(zip(sym.list_arguments(),
                      draw(rng, 'float64', *sym.infer_shape(data=shape[:4])[0]), strict=True))
    results = []
    for s in (sym, ref):
        # every shape given: MXNet 1.9.1's extension glue overruns a buffer by one
        # element per input whose shape it does not know yet (see igc_mx.inference)
        exe = s.simple_bind(mx.cpu(), grad_req=grad_req,
                            **{k: v.shape for k, v in values.items()},
                            type_dict={k: 'float64' for k in values})
        for name, grad in exe.grad_dict.items():
            grad[:] = 1.0
            exe.arg_dict[name][:] = values[name]
        for _ in range(2):
            exe.forward(is_train=True)
            exe.backward(mx.nd.array(head, dtype='float64'))
        results.append([exe.outputs[0].asnumpy()] +
                       [exe.grad_dict[n].asnumpy() for n in sym.list_arguments()])
    for name, a, b in zip(['output', *sym.list_arguments()], *results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


def test_saved_symbol_without_no_bias_has_no_bias():
    sym = mx.sym.InterleavedGroupConv(mx.sym.var('data'), primary_partition=2,
                                      secondary_partition=2, name='u')
    loaded = mx.sym.load_json(sym.tojson())
    assert loaded.list_arguments() == ['data', 'u_weight']
    biased = mx.sym.InterleavedGroupConv(mx.sym.var('data'), primary_partition=2,
                                         secondary_partition=2, name='u', no_bias=False)
    assert mx.sym.load_json(biased.tojson()).infer_shape(data=(1, 8, 3, 3))[0][2] == (8,)


@pytest.mark.parametrize('op,bias_shape,dtype,message', [
    ('GroupConvolution', (5,), 'float32', r'bias shape \(5\) does not match \(8,\)'),
    ('InterleavedGroupConv', (8, 1), 'float32', r'bias shape \(8,1\) does not match \(8,\)'),
    ('GroupConvolution', (8,), 'float64', 'data and bias dtypes differ: float32 and float64'),
    ('InterleavedGroupConv', (8,), 'float64',
     'data and bias dtypes differ: float32 and float64'),
])
def test_bad_bias_raises(op, bias_shape, dtype, message):
    x = mx.nd.ones((1, 8, 4, 4))
    if op == 'GroupConvolution':
        w, params = mx.nd.ones((8, 4, 3, 3)), dict(kernel=(3, 3), num_filter=8, num_group=2)
    else:
        w, params = mx.nd.ones((8, 4, 1, 1)), dict(primary_partition=2, secondary_partition=2)
    with pytest.raises(mx.base.MXNetError, match=message):
        getattr(mx.nd, op)(x, w, mx.nd.ones(bias_shape, dtype=dtype), no_bias=False,
                           **params).wait_to_read()
    with pytest.raises(RuntimeError, match=message):     # simple_bind's wrapping of it
        sym = getattr(mx.sym, op)(mx.sym.var('data'), no_bias=False, name='u', **params)
        sym.simple_bind(mx.cpu(), data=(1, 8, 4, 4), u_weight=w.shape, u_bias=bias_shape,
                        type_dict={'data': 'float32', 'u_bias': dtype})


def test_unknown_activation_raises():
    with pytest.raises(mx.base.MXNetError, match="act_type='sigmoid' is not supported"):
        mx.nd.InterleavedGroupConv(mx.nd.ones((1, 4, 2, 2)), mx.nd.ones((4, 2, 1, 1)),
                                   primary_partition=2, secondary_partition=2,
                                   act_type='sigmoid').wait_to_read()


def test_bad_residual_raises():
    x, w = mx.nd.ones((1, 8, 4, 4)), mx.nd.ones((8, 4, 1, 1))
    params = dict(primary_partition=2, secondary_partition=2, with_residual=True)
    with pytest.raises(mx.base.MXNetError,
                       match=r"residual shape \(1,8,4,3\) does not match the output's "
                             r'\(1,8,4,4\)'):
        mx.nd.InterleavedGroupConv(x, w, mx.nd.ones((1, 8, 4, 3)), **params).wait_to_read()
    with pytest.raises(mx.base.MXNetError, match="with_residual='yes' is not a boolean"):
        mx.nd.InterleavedGroupConv(x, w, primary_partition=2, secondary_partition=2,
                                   with_residual='yes').wait_to_read()
    with pytest.raises(TypeError, match="missing input 'residual'"):
        mx.sym.InterleavedGroupConv(mx.sym.var('data'), **params)
