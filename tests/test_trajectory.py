"""Training on real data gives the same trajectory in MXNet with igc_mx's ops as in
PyTorch: resnet_igc L=24, M=2, depth 20 as the builders make it on the CPU
(GroupConvolution and InterleavedGroupConv), its initial weights copied into the PyTorch
twin of bench/torch_side.py (PyTorch's grouped convolutions and channel_shuffle), the same
un-augmented Fashion-MNIST batches, and the recipe's SGD with Nesterov momentum and
weight decay, for STEPS steps. The losses of every step and the weights after the last
one agree: this checks the ops' gradients and the optimizer on real data, not only on
random tensors.

Both sides compute in float64. Rounding differences then start near 1e-16 and, although
training amplifies them step by step, stay below 1e-9 after STEPS steps, while a wrong
gradient or update rule moves the weights by 1e-3 or more within a few steps; the
tolerances (TOLERANCE) sit between the two.
"""
import json
import subprocess

import mxnet as mx
import numpy as np
import pytest

from igc_mx import networks
from igc_mx.training import optim, presets

from conftest import REPO_ROOT

STEPS, BATCH = 100, 8
LR, MOMENTUM, WD = 0.02, 0.9, 1e-4
#: largest difference allowed, relative to the largest magnitude of each array
TOLERANCE = 1e-7


def mxnet_trajectory(data, labels, params, dtype=np.float32):
    """(losses, parameters after the last step) of the default CPU graph in MXNet."""
    symbol = networks.get_symbol('resnet_igc', 10, 20, 24, 2)
    module = mx.mod.Module(symbol, context=mx.cpu())
    module.bind(data_shapes=[mx.io.DataDesc('data', data.shape[1:], dtype)],
                label_shapes=[mx.io.DataDesc('softmax_label', (BATCH,), dtype)])
    arg_params = {k: mx.nd.array(v, dtype=dtype) for k, v in params.items()
                  if not k.endswith(('_moving_mean', '_moving_var'))}
    aux_params = {k: mx.nd.array(v, dtype=dtype) for k, v in params.items()
                  if k.endswith(('_moving_mean', '_moving_var'))}
    module.init_params(arg_params=arg_params, aux_params=aux_params)
    module.init_optimizer(optimizer='nesterov', optimizer_params={
        'learning_rate': LR, 'momentum': MOMENTUM, 'wd': WD})
    losses = []
    for x, y in zip(data, labels, strict=True):
        batch = mx.io.DataBatch([mx.nd.array(x, dtype=dtype)],
                                [mx.nd.array(y, dtype=dtype)])
        module.forward_backward(batch)
        prob = module.get_outputs()[0].asnumpy()
        losses.append(-np.log(prob[np.arange(BATCH), y.astype(int)]).mean())
        module.update()
    arg_params, aux_params = module.get_params()
    return losses, {k: v.asnumpy() for k, v in {**arg_params, **aux_params}.items()}


def initial_params(shape):
    """The recipe's initialization of the network, seeded, in float64."""
    symbol = networks.get_symbol('resnet_igc', 10, 20, 24, 2)
    module = mx.mod.Module(symbol, context=mx.cpu())
    module.bind(data_shapes=[('data', shape)], label_shapes=[('softmax_label', (BATCH,))])
    mx.random.seed(0)
    module.init_params(optim.initializer())
    arg_params, aux_params = module.get_params()
    return {k: v.asnumpy() for k, v in {**arg_params, **aux_params}.items()}


def torch_trajectory(torch_python, data, labels, params, work, dtype='float32'):
    """(losses, parameters after the last step) of the PyTorch twin."""
    original = networks.get_symbol('resnet_igc', 10, 20, 24, 2, fused=False, group_conv=False)
    arg_shapes, _, _ = original.infer_shape(data=data.shape[1:])
    np.savez(work / 'params.npz', **params)
    np.savez(work / 'batches.npz', data=data, label=labels)
    job = {'kind': 'trajectory', 'graph': json.loads(original.tojson()),
           'arg_shapes': dict(zip(original.list_arguments(), arg_shapes, strict=True)),
           'params': str(work / 'params.npz'), 'batches': str(work / 'batches.npz'),
           'lr': LR, 'momentum': MOMENTUM, 'wd': WD, 'dtype': dtype,
           'out': str(work / 'after.npz')}
    proc = subprocess.run([torch_python, str(REPO_ROOT / 'bench' / 'torch_side.py')],
                          input=json.dumps(job), capture_output=True, text=True, timeout=600,
                          env={'OMP_NUM_THREADS': '2', 'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])['result']
    with np.load(work / 'after.npz') as after:
        return losses, dict(after)


@pytest.fixture(scope='module')
def batches(fashion_mnist_images):
    """STEPS batches of the first training images, normalized as the preset does."""
    images, labels = fashion_mnist_images('train')
    preset = presets.DATASETS['fashion-mnist']
    n = STEPS * BATCH
    x = (images[:n].astype(np.float32) - preset.mean[0]) / preset.std[0]
    return (x.reshape(STEPS, BATCH, 1, 28, 28),
            labels[:n].astype(np.float32).reshape(STEPS, BATCH))


def test_training_steps_equal_pytorch(batches, torch_python, tmp_path):
    data, labels = batches
    params = initial_params(data.shape[1:])
    ours_losses, ours = mxnet_trajectory(data, labels, params)
    theirs_losses, theirs = torch_trajectory(torch_python, data, labels, params, tmp_path)
    np.testing.assert_allclose(ours_losses, theirs_losses, rtol=TOLERANCE)
    assert ours_losses[-1] < 0.8 * ours_losses[0]     # it learned something
    assert sorted(ours) == sorted(theirs)
    for name, value in ours.items():
        if name.endswith('_moving_var'):
            continue   # PyTorch tracks the unbiased batch variance, MXNet the biased one
        scale = np.abs(theirs[name]).max()
        assert np.abs(value - theirs[name]).max() <= TOLERANCE * scale, name
        moved = np.abs(value - params[name]).max()
        assert moved > 1e3 * TOLERANCE * scale or name.endswith('_moving_mean'), name
