"""Training on real data takes the same steps in MXNet with igc_mx's ops as in PyTorch.

resnet_igc L=24, M=2, depth 20 as the builders make it on the CPU (GroupConvolution and
InterleavedGroupConv) trains STEPS steps on un-augmented Fashion-MNIST batches with the
recipe's SGD, Nesterov momentum and weight decay. From every state that training passes
through (weights, momentum, BatchNorm statistics), the PyTorch twin of
bench/torch_side.py (PyTorch's grouped convolutions and channel_shuffle, the same
parameters) takes the same step on the same batch: the loss and the update of every
parameter must agree with MXNet's. This checks the ops' gradients and the optimizer at
every step of a real run, not only on random tensors.

Why step by step: two float32 runs of the same training drift apart exponentially (the
first steps from a random start are chaotic: an MXNet float32 run and a float64 run of
these 100 steps end with weights 100 % apart, and MXNet and PyTorch in float32 no further
apart than that), so whole trajectories cannot be compared tightly. One step from the same
state can, up to float32's own noise, which this network makes large: at the first state,
MXNet's float32 gradients differ from its float64 gradients by 0.4 % of the norm of all
of them, and by up to 2.9 % of one parameter's (a BatchNorm shift, whose gradient is a
sum of 12,544 terms that nearly cancel); PyTorch's step differs from MXNet's by the same
amounts. GLOBAL_RTOL and PARAMETER_RTOL allow about four times that; a wrong gradient of
an op or a wrong update rule changes the updates it touches by tens of percent. The
losses, computed in the forward pass alone, agree to LOSS_RTOL. PyTorch takes the steps
CHECKED of the STEPS that MXNet trains, one in five, to keep the test short.
"""
import json
import subprocess

import mxnet as mx
import numpy as np
import pytest

from igc_mx import networks
from igc_mx.training import module as training_module
from igc_mx.training import optim, presets

from conftest import REPO_ROOT

STEPS, BATCH = 100, 16
LR, MOMENTUM, WD = 0.1, 0.9, 1e-4
NETWORK = ('resnet_igc', 10, 20, 24, 2)
CHECKED = range(0, STEPS, 5)
LOSS_RTOL = 1e-4
#: the difference of the updates relative to their size, over all parameters together
GLOBAL_RTOL = 0.02
#: the same for each parameter alone
PARAMETER_RTOL = 0.12


@pytest.fixture(scope='module')
def batches(fashion_mnist_images):
    """STEPS batches of the first training images, normalized as the preset does."""
    images, labels = fashion_mnist_images('train')
    preset = presets.DATASETS['fashion-mnist']
    n = STEPS * BATCH
    x = (images[:n].astype(np.float32) - preset.mean[0]) / preset.std[0]
    return x.reshape(STEPS, BATCH, 1, 28, 28), labels[:n].astype(np.float32).reshape(STEPS,
                                                                                    BATCH)


def mxnet_training(data, labels, states):
    """Train STEPS steps in MXNet from the recipe's seeded initialization, writing the state
    before each step k of CHECKED to ``states/<k>.npz`` and the one after it to
    ``states/<k>.after.npz``; returns the losses."""
    symbol = networks.get_symbol(*NETWORK)
    module = training_module.Module(symbol, context=mx.cpu())   # get_params waits for BatchNorm
    module.bind(data_shapes=[('data', data.shape[1:])],
                label_shapes=[('softmax_label', (BATCH,))])
    mx.random.seed(0)
    module.init_params(optim.initializer())
    module.init_optimizer(optimizer='nesterov', optimizer_params={
        'learning_rate': LR, 'momentum': MOMENTUM, 'wd': WD})
    names = module._exec_group.param_names     # the updater's index -> parameter
    def state():
        arg_params, aux_params = module.get_params()
        values = {name: v.asnumpy() for name, v in {**arg_params, **aux_params}.items()}
        for index, name in enumerate(names):
            # MXNet's NAG keeps the velocity v (v <- momentum*v - lr*g, the weight moves by
            # momentum*v - lr*g); PyTorch's momentum buffer is -v/lr
            velocity = module._updater.states.get(index)
            values[f'momentum:{name}'] = (np.zeros_like(values[name]) if velocity is None
                                          else -velocity.asnumpy() / LR)
        return values

    losses = []
    for k in range(STEPS):
        if k in CHECKED:
            np.savez(states / f'{k}.npz', data=data[k], label=labels[k], **state())
        batch = mx.io.DataBatch([mx.nd.array(data[k])], [mx.nd.array(labels[k])])
        module.forward_backward(batch)
        prob = module.get_outputs()[0].asnumpy()
        losses.append(-np.log(prob[np.arange(BATCH), labels[k].astype(int)]).mean())
        module.update()
        if k in CHECKED:
            np.savez(states / f'{k}.after.npz', **state())
    return losses


def torch_steps(torch_python, data, states):
    """PyTorch's loss of each step of CHECKED, its parameters after it in
    ``states/<k>.torch.npz``."""
    original = networks.get_symbol(*NETWORK, fused=False, group_conv=False)
    arg_shapes, _, _ = original.infer_shape(data=data.shape[1:])
    job = {'kind': 'steps', 'graph': json.loads(original.tojson()),
           'arg_shapes': dict(zip(original.list_arguments(), arg_shapes, strict=True)),
           'states': str(states), 'steps': list(CHECKED), 'lr': LR, 'momentum': MOMENTUM, 'wd': WD}
    proc = subprocess.run([torch_python, str(REPO_ROOT / 'bench' / 'torch_side.py')],
                          input=json.dumps(job), capture_output=True, text=True, timeout=900,
                          env={'OMP_NUM_THREADS': '2', 'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])['result']


def relative_differences(before, after, torch_after):
    """{parameter: |MXNet's update - PyTorch's| / |MXNet's|} (2-norms), and the same over
    all parameters together as ``'all'``."""
    out, num, den = {}, 0.0, 0.0
    for name in torch_after:
        if name.endswith(('_moving_mean', '_moving_var')):
            continue   # statistics, not learned; PyTorch's variance is unbiased
        ours = after[name].astype(np.float64) - before[name]
        theirs = torch_after[name].astype(np.float64) - before[name]
        out[name] = np.linalg.norm(ours - theirs) / np.linalg.norm(ours)
        num, den = num + np.sum((ours - theirs) ** 2), den + np.sum(ours ** 2)
    out['all'] = np.sqrt(num / den)
    return out


def test_training_steps_equal_pytorchs(batches, torch_python, tmp_path):
    data, labels = batches
    ours = mxnet_training(data, labels, tmp_path)
    theirs = torch_steps(torch_python, data, tmp_path)
    np.testing.assert_allclose(theirs, [ours[k] for k in CHECKED], rtol=LOSS_RTOL)
    assert np.mean(ours[-10:]) < 0.6 * np.mean(ours[:10])     # it learned
    for k in CHECKED:
        with np.load(tmp_path / f'{k}.npz') as before, \
                np.load(tmp_path / f'{k}.after.npz') as after, \
                np.load(tmp_path / f'{k}.torch.npz') as torch_after:
            errors = relative_differences(before, after, torch_after)
        assert errors.pop('all') <= GLOBAL_RTOL, k
        worst = max(errors, key=errors.get)
        assert errors[worst] <= PARAMETER_RTOL, (k, worst, errors[worst])
