"""The recipe's Nesterov optimizer with float16 weights and float32 master weights
(multi_precision), against a numpy reference of the same update."""
import mxnet as mx
import numpy as np
import pytest

import igc_mx.training.optim  # noqa: F401  (registers 'nesterov')


def reference_steps(w0, grads, lr, mom, wd, rescale):
    """float32 master weights updated by v = m v + G; w -= lr (G + m v), with
    G = rescale g + wd w computed from the float32 master; float16 copies after
    every step."""
    master, velocity = w0.astype(np.float32), np.zeros(w0.shape, np.float32)
    for g in grads:
        G = np.float32(rescale) * g.astype(np.float32) + np.float32(wd) * master
        velocity = np.float32(mom) * velocity + G
        master = master - np.float32(lr) * (G + np.float32(mom) * velocity)
    return master, master.astype(np.float16), velocity


@pytest.mark.parametrize('name,decay', [('conv_weight', 1e-2), ('bn_moving_thing', 0.0)])
def test_float16_weights_with_float32_master_weights(name, decay):
    rng = np.random.default_rng(0)
    lr, mom, wd, rescale = 0.05, 0.9, 1e-2, 1 / 8.
    w0 = rng.standard_normal((6, 5)).astype(np.float16)
    grads = [rng.standard_normal((6, 5)).astype(np.float16) for _ in range(4)]
    opt = mx.optimizer.create('nesterov', learning_rate=lr, momentum=mom, wd=wd,
                              rescale_grad=rescale, multi_precision=True,
                              param_idx2name={0: name})
    weight = mx.nd.array(w0, dtype='float16')
    state = opt.create_state_multi_precision(0, weight)
    assert state[1].dtype == np.float32          # the master copy
    for g in grads:
        opt.update_multi_precision(0, weight, mx.nd.array(g, dtype='float16'), state)
    master, half, velocity = reference_steps(w0, grads, lr, mom, decay, rescale)
    assert weight.dtype == np.float16
    np.testing.assert_allclose(state[1].asnumpy(), master, rtol=1e-5, atol=1e-6)
    # MXNet's NAG keeps the velocity scaled by -lr
    np.testing.assert_allclose(state[0].asnumpy(), -lr * velocity, rtol=1e-5, atol=1e-6)
    # float16 weights are the rounded master weights, not an accumulation in float16
    np.testing.assert_array_equal(weight.asnumpy(), half)


def test_float32_weights_ignore_multi_precision():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    results = []
    for multi_precision in (False, True):
        opt = mx.optimizer.create('nesterov', learning_rate=0.1, momentum=0.9, wd=1e-3,
                                  multi_precision=multi_precision,
                                  param_idx2name={0: 'fc_weight'})
        weight = mx.nd.array(w0)
        state = opt.create_state_multi_precision(0, weight)
        for g in grads:
            opt.update_multi_precision(0, weight, mx.nd.array(g), state)
        results.append(weight.asnumpy())
    master, _, _ = reference_steps(w0, grads, 0.1, 0.9, 1e-3, 1.0)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], master, rtol=1e-5, atol=1e-6)
