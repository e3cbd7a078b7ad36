"""grad_req='add' through the three extension ops from symbols that read their variables
directly, as JSON files saved without the wrappers' identity copies do: the gradients
added over two backward passes equal those of MXNet's own ops (Convolution, and reshape +
transpose for the channel permutation), through simple_bind, bind, Module and Gluon's
SymbolBlock (igc_mx._ops.install_bind_hooks)."""
import json

import mxnet as mx
import numpy as np
import pytest

from igc_mx import _ops

L, M = 4, 2
C = L * M
SHAPES = {'Reorder': {'data': (2, C, 5, 5)},
          'GroupConvolution': {'data': (2, C, 5, 5), 'weight': (C, C // L, 3, 3)},
          'InterleavedGroupConv': {'data': (2, C, 5, 5), 'weight': (C, C // M, 1, 1)}}


def permuted(x, groups):
    """Reorder with MXNet's ops: channels as (groups, C/groups), the two axes swapped."""
    return mx.sym.reshape(mx.sym.transpose(mx.sym.reshape(x, (0, -4, groups, -1, -2)),
                                           (0, 2, 1, 3, 4)), (0, -3, -2))


def symbols(op):
    """(ours read back from its JSON file's text, MXNet's reference)."""
    data, weight = mx.sym.var('data'), mx.sym.var('weight')
    if op == 'Reorder':
        ours = mx.sym.op.Reorder.raw(data, branch_factor=L)
        reference = permuted(data, L)
    elif op == 'GroupConvolution':
        ours = mx.sym.op.GroupConvolution.raw(data, weight, kernel=(3, 3), pad=(1, 1),
                                              num_filter=C, num_group=L, no_bias=True)
        reference = mx.sym.Convolution(data, weight, kernel=(3, 3), pad=(1, 1), num_filter=C,
                                       num_group=L, no_bias=True)
    else:
        ours = mx.sym.op.InterleavedGroupConv.raw(data, weight, primary_partition=L,
                                                  secondary_partition=M)
        reference = permuted(mx.sym.Convolution(permuted(data, L), weight, kernel=(1, 1),
                                                num_filter=C, num_group=M, no_bias=True), M)
    text = ours.tojson()
    assert all(node['op'] != '_copy' for node in json.loads(text)['nodes'])
    return mx.sym.load_json(text), reference


def inputs(op):
    rng = np.random.RandomState(1)
    values = {k: rng.randn(*s).astype(np.float32) for k, s in SHAPES[op].items()}
    head = rng.randn(*SHAPES[op]['data']).astype(np.float32)
    return values, head


def added_by_executor(symbol, op, how):
    """The gradients after two backward passes into gradients that start at 1."""
    values, head = inputs(op)
    shapes = SHAPES[op]
    if how == 'simple_bind':
        exe = symbol.simple_bind(mx.cpu(), grad_req='add', **shapes)
        for name, value in values.items():
            exe.arg_dict[name][:] = value
    else:
        args = {k: mx.nd.array(v) for k, v in values.items()}
        exe = symbol.bind(mx.cpu(), args, args_grad={k: mx.nd.zeros(s) for k, s in shapes.items()},
                          grad_req={k: 'add' for k in shapes})
    for grad in exe.grad_dict.values():
        grad[:] = 1
    for _ in range(2):
        exe.forward(is_train=True)
        exe.backward(mx.nd.array(head))
    return {k: exe.grad_dict[k].asnumpy() for k in shapes}


@pytest.mark.parametrize('how', ['simple_bind', 'bind'])
@pytest.mark.parametrize('op', sorted(SHAPES))
def test_added_gradients_from_json_equal_mxnets_ops(op, how):
    ours, reference = symbols(op)
    got, want = added_by_executor(ours, op, how), added_by_executor(reference, op, how)
    for name in SHAPES[op]:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
        assert np.abs(want[name] - 1).max() > 0.1      # the passes added something


@pytest.mark.parametrize('op', sorted(SHAPES))
def test_module_with_grad_req_add(op):
    values, head = inputs(op)
    results = []
    for symbol in symbols(op):
        params = sorted(set(SHAPES[op]) - {'data'})
        module = mx.mod.Module(mx.sym.MakeLoss(symbol * mx.sym.var('head')),
                               data_names=['data', 'head'], label_names=None,
                               fixed_param_names=None)
        module.bind(data_shapes=[('data', SHAPES[op]['data']), ('head', head.shape)],
                    inputs_need_grad=True, grad_req='add')
        module.init_params(arg_params={k: mx.nd.array(values[k]) for k in params})
        batch = mx.io.DataBatch([mx.nd.array(values['data']), mx.nd.array(head)])
        for _ in range(2):
            module.forward_backward(batch)
        grads = [module.get_input_grads()[0].asnumpy()]
        grads += [module._exec_group.grad_arrays[i][0].asnumpy() for i in range(len(params))]
        results.append(grads)
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings('ignore:Cannot decide type')   # SymbolBlock's, on 'data'
@pytest.mark.parametrize('op', sorted(SHAPES))
def test_symbol_block_with_grad_req_add(op):
    values, head = inputs(op)
    results = []
    for symbol in symbols(op):
        block = mx.gluon.SymbolBlock(symbol, [mx.sym.var('data')])
        params = block.collect_params()
        params.initialize()
        for name, param in params.items():
            param.set_data(mx.nd.array(values[name]))
        params.setattr('grad_req', 'add')
        x = mx.nd.array(values['data'])
        x.attach_grad(grad_req='add')
        for _ in range(2):
            with mx.autograd.record():
                y = block(x)
            y.backward(mx.nd.array(head))
        results.append([x.grad.asnumpy()] + [p.grad().asnumpy() for p in params.values()])
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_copies_change_neither_arguments_nor_outputs():
    symbol = mx.sym.load_json(symbols('InterleavedGroupConv')[0].tojson())
    copied = _ops.with_grad_copies(symbol)
    assert copied is not symbol
    assert copied.list_arguments() == symbol.list_arguments()
    assert copied.list_outputs() == symbol.list_outputs()
    assert [n['name'] for n in json.loads(copied.tojson())['nodes'] if n['op'] == '_copy'] == [
        'data_identity', 'weight_identity']
    assert _ops.with_grad_copies(copied) is copied     # nothing left to copy
