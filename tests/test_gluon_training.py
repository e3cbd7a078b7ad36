"""Training Gluon networks with igc_mx.gluon.trainer: the recipe's Nesterov steps equal
Module's from the same weights and batches, weight decay follows the recipe's name
rule, and float16 parameters keep float32 master weights."""
import mxnet as mx
import numpy as np
import pytest

from igc_mx import gluon as igc_gluon
from igc_mx import networks
from igc_mx.training import module, optim

LR, MOMENTUM, WD = 0.1, 0.9, 1e-4
BATCH, STEPS = 8, 3
NETWORK = ('resnet_igc', 10, 8, 4, 2)


def batches(seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.normal(size=(BATCH, 3, 32, 32)).astype(np.float32),
             rng.randint(0, 10, BATCH).astype(np.float32)) for _ in range(STEPS)]


def scheduler():
    """The lr drops by 10 after the second update: the update counting is the same."""
    return mx.lr_scheduler.MultiFactorScheduler(step=[2], factor=0.1, base_lr=LR)


def module_steps(symbol, data):
    """Module as training.fit runs it: its Module (whose get_params waits for the
    BatchNorm statistics' last update), the recipe's initializer and 'nesterov'."""
    mod = module.Module(symbol, context=mx.cpu())
    mod.bind(data_shapes=[('data', (BATCH, 3, 32, 32))],
             label_shapes=[('softmax_label', (BATCH,))])
    mx.random.seed(3)
    mod.init_params(optim.initializer())
    start = {**mod.get_params()[0], **mod.get_params()[1]}
    start = {k: v.copy() for k, v in start.items()}
    mod.init_optimizer(kvstore=None, optimizer='nesterov',
                       optimizer_params={'learning_rate': LR, 'momentum': MOMENTUM, 'wd': WD,
                                         'lr_scheduler': scheduler()})
    for x, y in data:
        mod.forward_backward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)]))
        mod.update()
    arg_params, aux_params = mod.get_params()
    return start, {k: v.asnumpy() for k, v in {**arg_params, **aux_params}.items()}


def gluon_steps(net, data):
    """The loop of docs/gluon.md."""
    trainer = igc_gluon.trainer(net, LR, MOMENTUM, WD, lr_scheduler=scheduler())
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for x, y in data:
        with mx.autograd.record():
            objective = loss(net(mx.nd.array(x)), mx.nd.array(y))
        objective.backward()
        trainer.step(BATCH)
    return {k: p.data().asnumpy() for k, p in net.collect_params().items()}


@pytest.mark.parametrize('hybridize', [True, False], ids=['hybridized', 'imperative'])
def test_steps_equal_modules(hybridize):
    """Same start, same batches: the weights, biases and BatchNorm statistics after the
    steps equal Module's. The two losses differ in rounding only (SoftmaxOutput's
    softmax - onehot against the gradient of log_softmax), a few float32 ulps that the
    steps carry into the weights."""
    data = batches()
    start, want = module_steps(networks.get_symbol(*NETWORK), data)
    net = igc_gluon.get_model(*NETWORK)
    igc_gluon.set_params(net, start)
    if hybridize:
        net.hybridize()
    got = gluon_steps(net, data)
    assert sorted(got) == sorted(want)
    moved = 0
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
        moved += not np.allclose(value, start[name].asnumpy(), rtol=1e-3, atol=1e-5)
    assert moved == len(want)         # every parameter and statistic took the steps


def test_weight_decay_follows_the_recipes_names():
    """wd_mult 0 where optim.wd_mult_for says so (names that do not end in _weight,
    _bias, _gamma or _beta), as Nesterov.set_wd_mult does for Module."""
    net = mx.gluon.nn.HybridSequential(prefix='net_')
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(4, in_units=3))
        net.add(igc_gluon.BatchNorm(in_channels=4))
    net.params.get('shift_offset', shape=(4,))
    net.initialize()
    trainer = igc_gluon.trainer(net, LR, MOMENTUM, WD)
    params = net.collect_params()
    rule = optim.wd_mult_for(params.keys())
    assert sorted(rule) == ['net_batchnorm0_moving_mean', 'net_batchnorm0_moving_var',
                            'net_shift_offset']
    assert {k: p.wd_mult for k, p in params.items()} == {k: rule.get(k, 1.0) for k in params}
    assert isinstance(trainer.optimizer, optim.Nesterov)
    assert not trainer.optimizer.multi_precision


def test_float16_parameters_keep_float32_master_weights():
    """A float16 network trains on float32 copies (multi_precision, on by default for
    float16 parameters): its float16 weights after the steps are the float32 weights of
    the same steps, rounded. Updates far below float16's resolution still add up.
    No forward: the CPU has no float16 convolution, so the gradients are given."""
    half = igc_gluon.get_model(*NETWORK, dtype='float16', device='gpu')
    single = igc_gluon.get_model(*NETWORK, device='gpu')
    igc_gluon.set_params(single, {k: p.data().astype('float32')
                                  for k, p in half.collect_params().items()})
    params = {'half': half.collect_params(), 'single': single.collect_params()}
    assert np.dtype(params['half']['g1_b1_p2_two1_conv1_weight'].dtype) == np.float16
    assert np.dtype(params['half']['g1_b1_p2_two1_bn_gamma'].dtype) == np.float32
    trainers = {'half': igc_gluon.trainer(half, 1e-5, MOMENTUM, WD),
                'single': igc_gluon.trainer(single, 1e-5, MOMENTUM, WD)}
    assert trainers['half'].optimizer.multi_precision
    rng = np.random.RandomState(5)
    start = {k: p.data().asnumpy() for k, p in params['half'].items()}
    for _ in range(STEPS):
        for name, param in params['half'].items():
            if param.grad_req == 'null':
                continue
            grad = rng.normal(size=param.shape).astype(param.dtype)
            for which in ('half', 'single'):
                target = params[which][name]
                target.grad()[:] = grad
                target.list_data()[0]._fresh_grad = True     # as a backward pass leaves it
        for trainer in trainers.values():
            trainer.step(BATCH)
    conv = 'g1_b1_p2_two1_conv1_weight'
    assert not np.array_equal(params['half'][conv].data().asnumpy(), start[conv])
    for name, param in params['half'].items():
        reference = params['single'][name].data().asnumpy()
        np.testing.assert_array_equal(param.data().asnumpy(),
                                      reference.astype(np.dtype(param.dtype)), err_msg=name)
