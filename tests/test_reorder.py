"""Reorder (the interleaved channel permutation) through MXNet: values, gradients,
grad_req, every execution mode, symbol files, and errors."""
import json

import mxnet as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import igc_mx  # noqa: F401  (loads the op library)

from conftest import PUBLISHED_SYMBOLS, reorder_reference

DTYPES = ['float32', 'float64', 'float16']


@st.composite
def shapes_and_branch_factors(draw):
    ndim = draw(st.integers(2, 5))
    branch_factor = draw(st.integers(1, 6))
    per_branch = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 3))
    trailing = [draw(st.integers(1, 5)) for _ in range(ndim - 2)]
    return (batch, branch_factor * per_branch, *trailing), branch_factor


def test_definition_by_index():
    # The definition, element by element, independent of the reshape reference.
    c, g = 12, 3
    x = np.random.default_rng(0).random((2, c, 5)).astype('float32')
    y = mx.nd.Reorder(mx.nd.array(x), branch_factor=g).asnumpy()
    for i in range(g):
        for j in range(c // g):
            np.testing.assert_array_equal(y[:, j * g + i], x[:, i * (c // g) + j])


@settings(max_examples=60, deadline=None)
@given(shapes_and_branch_factors(), st.sampled_from(DTYPES))
def test_forward_matches_numpy(shape_and_g, dtype):
    shape, g = shape_and_g
    x = (np.random.default_rng(1).standard_normal(shape) * 100).astype(dtype)
    y = mx.nd.Reorder(mx.nd.array(x, dtype=dtype), branch_factor=g)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    np.testing.assert_array_equal(y.asnumpy(), reorder_reference(x, g))


@settings(max_examples=30, deadline=None)
@given(shapes_and_branch_factors(), st.sampled_from(DTYPES))
def test_gradient_is_inverse_permutation(shape_and_g, dtype):
    shape, g = shape_and_g
    rng = np.random.default_rng(2)
    x = mx.nd.array(rng.standard_normal(shape), dtype=dtype)
    head = rng.standard_normal(shape).astype(dtype)
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Reorder(x, branch_factor=g)
    y.backward(mx.nd.array(head, dtype=dtype))
    # The inverse of Reorder with branch factor g is Reorder with C/g.
    np.testing.assert_array_equal(x.grad.asnumpy(), reorder_reference(head, shape[1] // g))


@pytest.mark.parametrize('shape,g', [((2, 6, 3, 3), 2), ((3, 12, 4), 4), ((2, 8), 8)])
def test_round_trip_is_identity(shape, g):
    x = mx.nd.array(np.random.default_rng(3).standard_normal(shape))
    back = mx.nd.Reorder(mx.nd.Reorder(x, branch_factor=g), branch_factor=shape[1] // g)
    np.testing.assert_array_equal(back.asnumpy(), x.asnumpy())


def test_numeric_gradient():
    data = mx.sym.var('data')
    sym = mx.sym.Reorder(data=data, branch_factor=3) * mx.sym.var('w')
    shape = (2, 6, 3, 2)
    rng = np.random.default_rng(4)
    loc = {'data': rng.standard_normal(shape), 'w': rng.standard_normal(shape)}
    mx.test_utils.check_numeric_gradient(sym, loc, grad_nodes=['data'], dtype=np.float64,
                                         rtol=1e-5, atol=1e-7)


def test_workspace_is_accepted_and_ignored():
    x = mx.nd.array(np.random.default_rng(5).standard_normal((2, 4, 3)))
    a = mx.nd.Reorder(x, branch_factor=2, workspace=1)
    b = mx.nd.Reorder(x, branch_factor=2)
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


# ---------------------------------------------------------------- grad_req

def test_imperative_grad_req_add_accumulates():
    rng = np.random.default_rng(6)
    x = mx.nd.array(rng.standard_normal((2, 6, 4)))
    heads = [rng.standard_normal((2, 6, 4)) for _ in range(3)]
    x.attach_grad(grad_req='add')
    for head in heads:
        with mx.autograd.record():
            y = mx.nd.Reorder(x, branch_factor=3)
        y.backward(mx.nd.array(head))
    expected = sum(reorder_reference(h, 2) for h in heads)
    np.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=1e-5, atol=1e-6)


def _bind_reorder_of_variable(grad_req):
    data = mx.sym.var('data')
    sym = mx.sym.Reorder(data=data, branch_factor=2, name='r') * mx.sym.var('w')
    return sym.simple_bind(mx.cpu(), data=(2, 4, 3), w=(2, 4, 3), grad_req=grad_req)


def test_executor_grad_req_write_add_null():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 3))
    w = rng.standard_normal((2, 4, 3))
    head = np.ones((2, 4, 3))
    one_step = reorder_reference(w * head, 2)  # d/d data of sum(w * Reorder(data))

    def run(grad_req, steps):
        exe = _bind_reorder_of_variable(grad_req)
        exe.arg_dict['data'][:] = x
        exe.arg_dict['w'][:] = w
        if 'data' in exe.grad_dict and exe.grad_dict['data'] is not None:
            exe.grad_dict['data'][:] = 0
        for _ in range(steps):
            exe.forward(is_train=True)
            exe.backward(mx.nd.array(head))
        return exe

    # float32 executor against a float64 reference: three float32 additions may
    # round by a few ulps, so compare at float32 precision.
    f32 = dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run('write', 2).grad_dict['data'].asnumpy(), one_step, **f32)
    np.testing.assert_allclose(run('add', 3).grad_dict['data'].asnumpy(), 3 * one_step, **f32)
    exe = run({'data': 'null', 'w': 'write'}, 1)
    assert exe.grad_dict.get('data') is None
    np.testing.assert_allclose(exe.grad_dict['w'].asnumpy(), reorder_reference(x, 2) * head,
                               **f32)


# ----------------------------------------------------- symbols, Module, Gluon

def _small_net(reorder):
    """conv -> channel permutation -> 1x1 group conv -> classifier."""
    data = mx.sym.var('data')
    net = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1), num_group=2,
                             no_bias=True, name='conv1')
    net = reorder(net, 2)
    net = mx.sym.Convolution(net, num_filter=8, kernel=(1, 1), num_group=4, no_bias=True,
                             name='conv2')
    net = mx.sym.FullyConnected(mx.sym.flatten(net), num_hidden=3, name='fc')
    return mx.sym.SoftmaxOutput(net, name='softmax')


def _reorder_op(x, g):
    return mx.sym.Reorder(data=x, branch_factor=g, name='reorder')


def _reorder_by_transpose(x, g):
    # What IGCV3/GluonCV do with builtin ops: an independent implementation.
    return mx.sym.reshape(mx.sym.transpose(mx.sym.reshape(x, shape=(0, -4, g, -1, -2)),
                                           axes=(0, 2, 1, 3, 4)), shape=(0, -3, -2))


def test_symbol_json_round_trip():
    sym = _small_net(_reorder_op)
    loaded = mx.sym.load_json(sym.tojson())
    assert loaded.tojson() == sym.tojson()
    node = next(n for n in json.loads(loaded.tojson())['nodes'] if n['op'] == 'Reorder')
    assert node['attrs'] == {'branch_factor': '2'}
    _, out_shapes, _ = loaded.infer_shape(data=(2, 4, 6, 6))
    assert out_shapes == [(2, 3)]


def test_module_training_step_matches_builtin_equivalent():
    batch = mx.io.DataBatch([mx.nd.array(np.random.default_rng(8).standard_normal((4, 4, 6, 6)))],
                            [mx.nd.array([0, 1, 2, 1])])
    grads = {}
    for name, reorder in [('op', _reorder_op), ('transpose', _reorder_by_transpose)]:
        mod = mx.mod.Module(_small_net(reorder), context=mx.cpu())
        mod.bind(data_shapes=[('data', (4, 4, 6, 6))], label_shapes=[('softmax_label', (4,))])
        mx.random.seed(7)
        mod.init_params(mx.init.Xavier())
        mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.1})
        before = {k: v.copy() for k, v in mod.get_params()[0].items()}
        mod.forward_backward(batch)
        grads[name] = {k: g[0].asnumpy() for k, g in zip(mod._exec_group.param_names,
                                                          mod._exec_group.grad_arrays, strict=True)}
        mod.update()
        after = mod.get_params()[0]
        assert all(not np.allclose(before[k].asnumpy(), after[k].asnumpy()) for k in before)
    for k in grads['op']:
        np.testing.assert_allclose(grads['op'][k], grads['transpose'][k], rtol=1e-5,
                                   atol=1e-6)


class _ReorderBlock(mx.gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(6, 3, padding=1, groups=3, use_bias=False)

    def hybrid_forward(self, F, x):
        return F.Reorder(self.conv(x), branch_factor=3)


@pytest.mark.parametrize('grad_req', ['write', 'add'])
def test_hybridized_gluon_block(grad_req):
    x = mx.nd.array(np.random.default_rng(9).standard_normal((2, 3, 5, 5)))
    results = []
    for hybridize in (False, True):
        net = _ReorderBlock()
        net.initialize(mx.init.Constant(0.5))
        net.collect_params().setattr('grad_req', grad_req)
        if hybridize:
            net.hybridize()
        for _ in range(2):
            with mx.autograd.record():
                y = net(x)
            y.backward(mx.nd.array(np.arange(y.size).reshape(y.shape)))
        results.append((y.asnumpy(), net.conv.weight.grad().asnumpy()))
    conv_out = mx.nd.Convolution(x, mx.nd.full((6, 1, 3, 3), 0.5), num_filter=6,
                                 kernel=(3, 3), pad=(1, 1), num_group=3, no_bias=True)
    np.testing.assert_allclose(results[0][0], reorder_reference(conv_out.asnumpy(), 3),
                               rtol=1e-6)
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5)


# ------------------------------------------------------- published symbols

@pytest.mark.parametrize('row,relpath', PUBLISHED_SYMBOLS, ids=[r for r, _ in PUBLISHED_SYMBOLS])
def test_published_symbol_loads_and_runs(published_models_dir, row, relpath):
    sym = mx.sym.load(str(published_models_dir / relpath))
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=(1, 3, 224, 224))
    assert out_shapes == [(1, 1000)]
    exe = sym.simple_bind(mx.cpu(), data=(1, 3, 224, 224), grad_req='null')
    rng = np.random.RandomState(0)
    for arr in exe.arg_dict.values():
        arr[:] = rng.uniform(-0.05, 0.05, arr.shape)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1.0 if name.endswith('moving_var') else 0.0
    exe.forward(is_train=False)
    probs = exe.outputs[0].asnumpy()
    assert np.all(np.isfinite(probs)) and abs(probs.sum() - 1) < 1e-4


# ------------------------------------------------------------------ errors

def _message(excinfo):
    return str(excinfo.value)


@pytest.mark.parametrize('kwargs,shape,expected', [
    ({'branch_factor': 4}, (2, 6, 3), 'C=6 (axis 1) is not divisible by branch_factor=4'),
    ({'branch_factor': 0}, (2, 6, 3), 'branch_factor=0 is out of range'),
    ({'branch_factor': -2}, (2, 6, 3), 'branch_factor=-2 is out of range'),
    ({'branch_factor': '2.5'}, (2, 6, 3), "branch_factor='2.5' is not an integer"),
    ({'branch_factor': 'two'}, (2, 6, 3), "branch_factor='two' is not an integer"),
    ({'branch_factor': ' '}, (2, 6, 3), "branch_factor=' ' is not an integer"),
    ({'branch_factor': 2, 'workspace': ' '}, (2, 6, 3), "workspace=' ' is not an integer"),
    ({'branch_factor': 2 ** 40}, (2, 6, 3), 'branch_factor=1099511627776 is out of range'),
    ({'branch_factor': 2}, (6,), 'at least 2 dimensions (N, C, ...), got ndim=1 shape=(6)'),
    ({'branch_factor': 2, 'groups': 3}, (2, 6, 3), "unknown parameter 'groups'='3'"),
    ({'branch_factor': 2, 'workspace': 9000}, (2, 6, 3), 'workspace=9000 is out of range'),
    ({}, (2, 6, 3), "missing required parameter 'branch_factor'"),
])
def test_bad_input_raises_mxnet_error(kwargs, shape, expected):
    with pytest.raises(mx.base.MXNetError) as excinfo:
        mx.nd.Reorder(mx.nd.ones(shape), **kwargs).wait_to_read()
    assert expected in _message(excinfo)


@pytest.mark.parametrize('dtype', ['int32', 'uint8', 'int64'])
def test_unsupported_dtype_raises(dtype):
    with pytest.raises(mx.base.MXNetError) as excinfo:
        mx.nd.Reorder(mx.nd.ones((2, 4), dtype=dtype), branch_factor=2).wait_to_read()
    assert f'unsupported dtype {dtype}; expected float32, float64 or float16' in _message(excinfo)


def test_symbolic_errors_raise_at_shape_inference():
    sym = mx.sym.Reorder(data=mx.sym.var('data'), branch_factor=5)
    with pytest.raises(mx.base.MXNetError) as excinfo:
        sym.infer_shape(data=(1, 12, 2, 2))
    assert 'C=12 (axis 1) is not divisible by branch_factor=5' in _message(excinfo)


def test_error_messages_do_not_accumulate():
    with pytest.raises(mx.base.MXNetError):
        mx.nd.Reorder(mx.nd.ones((2, 6)), branch_factor=4).wait_to_read()
    with pytest.raises(mx.base.MXNetError) as excinfo:
        mx.nd.Reorder(mx.nd.ones((2, 6)), branch_factor='x').wait_to_read()
    assert 'not divisible' not in _message(excinfo)


def test_array_inputs_by_keyword_and_wrong_count():
    x = mx.nd.array(np.random.default_rng(10).standard_normal((1, 4)))
    np.testing.assert_array_equal(mx.nd.Reorder(data=x, branch_factor=2).asnumpy(),
                                  reorder_reference(x.asnumpy(), 2))
    with pytest.raises(TypeError, match="missing input 'data'"):
        mx.nd.Reorder(branch_factor=2)
    with pytest.raises(TypeError, match='takes 1 array input'):
        mx.nd.Reorder(x, x, branch_factor=2)


def test_gradient_of_tensor_with_many_consumers():
    # MXNet sums 8+ gradients in place by default, asking each producer to add
    # into its output; igc_mx turns that off because extension ops cannot add.
    data = mx.sym.var('data')
    hidden = data * 2
    branches = [mx.sym.Reorder(data=hidden, branch_factor=2, name=f'r{k}') for k in range(10)]
    exe = mx.sym.ElementWiseSum(*branches).simple_bind(mx.cpu(), data=(2, 4, 3))
    rng = np.random.default_rng(11)
    exe.arg_dict['data'][:] = rng.standard_normal((2, 4, 3))
    head = rng.standard_normal((2, 4, 3))
    exe.forward(is_train=True)
    exe.backward(mx.nd.array(head))
    np.testing.assert_allclose(exe.grad_dict['data'].asnumpy(),
                               20 * reorder_reference(head, 2), rtol=1e-5)
