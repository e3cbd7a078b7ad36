"""The Gluon layers (igc_mx.gluon.layers) against the symbol builders of igc_mx.blocks
(same parameters: same outputs, gradients and statistics), MXNet's Convolution and the
numpy Reorder, imperatively and hybridized; grad_req='add'; names; errors."""
import mxnet as mx
import numpy as np
import pytest

from igc_mx import blocks
from igc_mx import gluon as igc_gluon

from conftest import reorder_reference

UNIT = {'num_filter': 12, 'kernel': (3, 3), 'stride': (2, 2), 'pad': (1, 1),
        'primary_partition': 4, 'secondary_partition': 3}
IN_SHAPE = (2, 8, 7, 7)


def symbol_run(symbol, params, x, head):
    """Output, gradients ({name: array}, data included) and the statistics after one
    training-mode forward and backward of the executor."""
    exe = symbol.simple_bind(mx.cpu(), data=x.shape)
    exe.copy_params_from({k: v for k, v in params.items() if k in exe.arg_dict},
                         {k: v for k, v in params.items() if k in exe.aux_dict})
    exe.arg_dict['data'][:] = x
    out = exe.forward(is_train=True)[0].asnumpy()
    exe.backward(mx.nd.array(head))
    return (out, {k: g.asnumpy() for k, g in exe.grad_dict.items()},
            {k: a.asnumpy() for k, a in exe.aux_dict.items()})


HYBRIDIZE = {'imperative': None, 'hybridized': {},
             'static': {'static_alloc': True, 'static_shape': True}}


def gluon_run(block, x, head, hybridize):
    """Output, gradients (the data's included) and statistics of ``block`` after a forward
    and backward pass in training mode; ``hybridize``: None, or its keyword arguments."""
    if hybridize is not None:
        block.hybridize(**hybridize)
    data = mx.nd.array(x)
    data.attach_grad()
    with mx.autograd.record():
        y = block(data)
    y.backward(mx.nd.array(head))
    params = block.collect_params()
    grads = {k: p.grad().asnumpy() for k, p in params.items() if p.grad_req != 'null'}
    grads['data'] = data.grad.asnumpy()
    stats = {k: p.data().asnumpy() for k, p in params.items() if p.grad_req == 'null'}
    return y.asnumpy(), grads, stats


def random_values(params, seed=0):
    """{name: array} for a ParameterDict: weights, gamma/beta and statistics away from
    their initial values."""
    rng = np.random.RandomState(seed)
    values = {}
    for name, p in params.items():
        if name.endswith('_var'):
            values[name] = mx.nd.array(rng.uniform(0.5, 2.0, p.shape))
        elif name.endswith('_gamma'):
            values[name] = mx.nd.array(rng.uniform(0.5, 1.5, p.shape))
        else:
            values[name] = mx.nd.array(rng.normal(0, 0.3, p.shape))
    return values


def assert_same(got, want, rtol=1e-5):
    """Equal to float32 precision relative to the largest value (the imperative path
    sums gradients in another order than the executor)."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(np.abs(want).max(), 1e-30))


@pytest.mark.parametrize('mode', HYBRIDIZE)
@pytest.mark.parametrize('fused,group_conv', [(True, True), (False, False), (True, False)])
def test_igc_unit_equals_the_symbol_unit(fused, group_conv, mode):
    unit = igc_gluon.IGCUnit(**UNIT, fused=fused, group_conv=group_conv,
                             in_channels=IN_SHAPE[1], prefix='g1_b1_')
    symbol = blocks.igc_unit(mx.sym.var('data'), 'g1_b1', **UNIT, fused=fused,
                             group_conv=group_conv)
    params = unit.collect_params()
    assert sorted(params.keys()) == sorted(
        symbol.list_arguments()[1:] + symbol.list_auxiliary_states())
    values = random_values(params)
    unit.initialize()
    igc_gluon.set_params(unit, values)
    rng = np.random.RandomState(1)
    x = rng.normal(size=IN_SHAPE).astype(np.float32)
    head = rng.normal(size=(2, 12, 4, 4)).astype(np.float32)
    want = symbol_run(symbol, values, x, head)
    got = gluon_run(unit, x, head, HYBRIDIZE[mode])
    assert_same(got[0], want[0])
    for expected, actual in zip(want[1:], got[1:], strict=True):
        assert sorted(actual) == sorted(expected)
        for name in expected:
            assert_same(actual[name], expected[name], rtol=1e-4)


@pytest.mark.parametrize('hybridize', [False, True], ids=['imperative', 'hybridized'])
def test_grad_req_add_accumulates(hybridize):
    """GroupConvolution and InterleavedGroupConv get their weights through the op
    wrappers' identity, so gradients add up over passes."""
    unit = igc_gluon.IGCUnit(**UNIT, fused=True, group_conv=True, in_channels=IN_SHAPE[1])
    unit.initialize(mx.init.Xavier())
    if hybridize:
        unit.hybridize()
    x = mx.nd.array(np.random.RandomState(2).normal(size=IN_SHAPE))
    grads = []
    for grad_req, passes in (('write', 1), ('add', 3)):
        unit.collect_params().setattr('grad_req', grad_req)
        unit.collect_params('.*moving.*').setattr('grad_req', 'null')
        for _ in range(passes):
            with mx.autograd.record(train_mode=False):
                y = unit(x)
            y.backward()
        grads.append({k: unit.collect_params()[k].grad().asnumpy()
                      for k in (unit.conv1.weight.name, unit.conv2_weight.name)})
    for name, once in grads[0].items():
        assert np.abs(once).max() > 0
        np.testing.assert_allclose(grads[1][name], 3 * once, rtol=1e-5, atol=1e-6)


class UserBlock(mx.gluon.HybridBlock):
    """What a user writes: a convolution, an IGC unit whose input channels come from the
    first call, a Reorder and a classifier."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.stem = mx.gluon.nn.Conv2D(8, 3, padding=1, use_bias=False)
            self.igc = igc_gluon.IGCUnit(16, 3, 1, 1, primary_partition=4,
                                         secondary_partition=4)
            self.shuffle = igc_gluon.Reorder(2)
            self.fc = mx.gluon.nn.Dense(3)

    def hybrid_forward(self, F, x):
        return self.fc(self.shuffle(self.igc(self.stem(x))))


def test_igc_unit_in_a_user_block():
    x = mx.nd.array(np.random.RandomState(3).normal(size=(2, 3, 6, 6)))
    outputs = []
    for hybridize in (False, True):
        net = UserBlock(prefix='mynet_')
        mx.random.seed(0)       # deferred: the first call draws the values
        net.initialize(mx.init.Xavier())
        if hybridize:
            net.hybridize()
        outputs.append(net(x).asnumpy())
        shapes = {k: p.shape for k, p in net.collect_params().items()}
    assert shapes['mynet_igcunit0_conv1_weight'] == (16, 2, 3, 3)     # 8 inputs / L=4
    assert shapes['mynet_igcunit0_conv2_weight'] == (16, 4, 1, 1)     # 16 / M=4
    assert shapes['mynet_igcunit0_bn_moving_var'] == (16,)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('hybridize', [False, True], ids=['imperative', 'hybridized'])
def test_reorder_and_group_conv_blocks(hybridize):
    rng = np.random.RandomState(4)
    x = rng.normal(size=(2, 6, 5, 5)).astype(np.float32)
    shuffle = igc_gluon.Reorder(3)
    if hybridize:
        shuffle.hybridize()
    np.testing.assert_array_equal(shuffle(mx.nd.array(x)).asnumpy(), reorder_reference(x, 3))
    w = rng.normal(size=(12, 2, 3, 3)).astype(np.float32)
    want = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(w), num_filter=12, kernel=(3, 3),
                             stride=(2, 2), pad=(1, 1), num_group=3, no_bias=True).asnumpy()
    for group_conv in (True, False):
        conv = igc_gluon.GroupConv(12, 3, stride=2, pad=1, num_group=3, group_conv=group_conv,
                                   in_channels=6)
        conv.initialize()
        conv.weight.set_data(mx.nd.array(w))
        if hybridize:
            conv.hybridize()
        assert_same(conv(mx.nd.array(x)).asnumpy(), want)


@pytest.mark.parametrize('make,message', [
    (lambda: igc_gluon.IGCUnit(12, 3, 1, 1, 5, 2, prefix='u_'),
     "IGC unit 'u': primary_partition=5 does not divide num_filter=12"),
    (lambda: igc_gluon.IGCUnit(12, 3, 1, 1, 4, 5, prefix='u_'),
     "IGC unit 'u': secondary_partition=5 does not divide num_filter=12"),
    (lambda: igc_gluon.IGCUnit(12, 3, 1, 1, 4, 3, in_channels=6, prefix='u_'),
     "layer 'u_conv1': num_group=4 does not divide in_channels=6"),
    (lambda: igc_gluon.IGCUnit(12, 3, 1, 1, 4, 3, fused='yes', prefix='u_'),
     "u: fused='yes': expected True, False or None"),
    (lambda: igc_gluon.IGCUnit(12, 3, 1, 1, 4, 3, group_conv='yes', prefix='u_'),
     "group_conv='yes': expected True, False or 'auto'"),
    (lambda: igc_gluon.IGCUnit(12, 3.5, 1, 1, 4, 3, prefix='u_'),
     'kernel=3.5: expected an int or a pair of ints'),
    (lambda: igc_gluon.Reorder(0, prefix='r_'), "layer 'r': branch_factor=0 must be a positive"),
])
def test_bad_layer_arguments_are_value_errors(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
