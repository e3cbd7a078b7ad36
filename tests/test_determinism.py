"""CPU training is deterministic: two identical runs give the same checkpoint bit for bit,
and so does a run in which MXNet's engine finishes every operation before the next
(NaiveEngine). MXNet 1.9.1's graph executor does not tell its engine that BatchNorm writes
its moving statistics, so the end of an epoch read them while the last backward pass could
still be updating them (igc_mx.training.module)."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np

from igc_mx.training.module import Module

from test_training import REPO


def test_parameters_are_read_after_the_last_update_of_the_statistics():
    """The BatchNorm statistics that get_params returns right after an update, as
    Module.fit reads them at an epoch's end, are those the engine ends with."""
    x = mx.sym.Convolution(mx.sym.var('data'), num_filter=32, kernel=(3, 3), pad=(1, 1),
                           name='conv')
    x = mx.sym.BatchNorm(x, name='bn')
    x = mx.sym.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
    symbol = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=4,
                                                        name='fc'), name='softmax')
    module = Module(symbol, context=mx.cpu())
    module.bind(data_shapes=[('data', (32, 3, 40, 40))], label_shapes=[('softmax_label', (32,))])
    module.init_params(mx.init.Xavier())
    module.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.1})
    rng = np.random.RandomState(0)
    batch = mx.io.DataBatch([mx.nd.array(rng.randn(32, 3, 40, 40) * 5 + 3)],
                            [mx.nd.array(rng.randint(0, 4, 32))])
    for _ in range(2):
        module.forward_backward(batch)
        module.update()
        _, aux_params = module.get_params()
        read = aux_params['bn_moving_mean'].asnumpy()
        mx.nd.waitall()
        (final,) = module._exec_group.aux_arrays[0]
        np.testing.assert_array_equal(read, final.asnumpy())
        module.set_params(*module.get_params())    # as Module.fit does


def start(prefix, dataset, engine):
    """train_model.py with MXNET_ENGINE_TYPE=engine, on one OpenMP thread (a thread count
    changes the order of sums), for one batch of the paper's CIFAR network (resnet_igc
    L24M2) at depth 14: deep enough for the backward pass to outlast the end of the epoch's
    bookkeeping, where the statistics were read."""
    argv = ['--data-dir', dataset, '--depth', '14', '--batch-size', '32',
            '--test-batch-size', '32', '--max-batches', '1', '--max-val-batches', '1',
            '--num-epochs', '1', '--rand-seed', '3', '--data-nthreads', '1', '--log-iters',
            '100', '--model-prefix', str(prefix)]
    prefix.parent.mkdir(parents=True)
    with open(prefix.parent / 'console.txt', 'w') as console:
        return subprocess.Popen([sys.executable, str(REPO / 'train_model.py'), *argv],
                                cwd=REPO, stdout=console, stderr=subprocess.STDOUT,
                                env=dict(os.environ, MXNET_ENGINE_TYPE=engine,
                                         OMP_NUM_THREADS='1'))


def test_identical_runs_give_identical_checkpoints(dataset, tmp_path):
    engines = {'first': 'ThreadedEnginePerDevice', 'second': 'ThreadedEnginePerDevice',
               'naive': 'NaiveEngine'}
    runs = {name: start(tmp_path / name / 'm', dataset, engine)
            for name, engine in engines.items()}    # side by side
    saved = {}
    for name, proc in runs.items():
        assert proc.wait(timeout=300) == 0, (tmp_path / name / 'console.txt').read_text()
        saved[name] = {k: v.asnumpy() for k, v in
                       mx.nd.load(str(tmp_path / name / 'm-0001.params')).items()}
    first, second, naive = saved['first'], saved['second'], saved['naive']
    assert sorted(first) == sorted(second) == sorted(naive)
    assert 'aux:g0_bn_moving_mean' in first
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        np.testing.assert_array_equal(first[name], naive[name], err_msg=name)
