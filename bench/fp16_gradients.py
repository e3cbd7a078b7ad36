"""Would float16 gradients underflow without loss scaling? A measurement, not a benchmark.

    .venv/bin/python bench/fp16_gradients.py      # about 2 minutes on 2 cores

Trains resnet_igc (L=24, M=2, depth 20) in float32 on the CPU on a generated CIFAR-10
set (2000 images, batch 64, the recipe's optimizer) for 6 epochs and records, at a few
updates, the raw gradients of every weight and of the input image (the smallest
activation gradient, at the bottom of the network): the share of non-zero entries
below float16's smallest subnormal (2^-24, they would become 0) and below its smallest
normal number (2^-14, they would lose precision). SoftmaxOutput's gradient is
p - onehot per image (the 1/batch is applied by the optimizer's rescale_grad, in float32
on the master weights), so the backward pass runs at the scale of the loss times the
batch size. Writes bench/results/fp16_gradients.md.
"""
import sys
import tempfile
from pathlib import Path

import mxnet as mx
import numpy as np

from igc_mx import networks
from igc_mx.atomic import atomic_path
from igc_mx.datasets import synthetic_cifar
from igc_mx.tools import make_rec
from igc_mx.training import optim

RESULTS = Path(__file__).resolve().parent / 'results'
TINY, SUBNORMAL = 2.0 ** -24, 2.0 ** -14
REPORT_AT = (0, 30, 95, 187)


def shares(values):
    nonzero = np.abs(values[values != 0])
    return (nonzero.size, float(np.median(nonzero)), 100 * float(np.mean(nonzero < TINY)),
            100 * float(np.mean(nonzero < SUBNORMAL)))


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = synthetic_cifar.write_archive(str(Path(tmp) / 'c.tar.gz'), 2000, 200, seed=1)
        make_rec.main(['cifar10', archive, str(Path(tmp) / 'rec'), '--workers', '2',
                       '--quiet'])
        mx.random.seed(0)
        np.random.seed(0)
        it = mx.io.ImageRecordIter(
            path_imgrec=str(Path(tmp) / 'rec' / 'train.rec'), data_shape=(3, 32, 32),
            batch_size=64, shuffle=True, seed=0, rand_mirror=True, mean_r=125.307,
            mean_g=122.950, mean_b=113.865, std_r=62.993, std_g=62.089, std_b=66.705)
        mod = mx.mod.Module(networks.get_symbol('resnet_igc', 10, 20, 24, 2),
                            context=mx.cpu())
        mod.bind(it.provide_data, it.provide_label, inputs_need_grad=True)
        mod.init_params(optim.initializer())
        mod.init_optimizer(optimizer='nesterov', optimizer_params={
            'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4})
        update = 0
        for _ in range(6):
            it.reset()
            for batch in it:
                mod.forward_backward(batch)
                if update in REPORT_AT:
                    weights = np.concatenate([g[0].asnumpy().ravel()
                                              for g in mod._exec_group.grad_arrays])
                    data = mod.get_input_grads()[0].asnumpy().ravel()
                    for name, values in (('weights', weights), ('input image', data)):
                        rows.append((update, name) + shares(values))
                mod.update()
                update += 1
        accuracy = dict(mod.score(it, 'acc'))['accuracy']
    lines = ['# Float16 gradient range (resnet_igc L24M2 d20, CIFAR-10 generated set)', '',
             '`python bench/fp16_gradients.py`: float32 training on the CPU; the gradients '
             'a float16 run would hold, before the optimizer\'s 1/batch.', '',
             '| update | gradient of | non-zero entries | median abs | < 2^-24 (would be 0) '
             '| < 2^-14 (subnormal) |', '|---|---|---|---|---|---|']
    lines += ['| {} | {} | {} | {:.2e} | {:.4f} % | {:.3f} % |'.format(*row) for row in rows]
    lines += ['', f'Training accuracy after {update} updates: {accuracy:.3f}.']
    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / 'fp16_gradients.md') as tmp:
        Path(tmp).write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
