"""Train an IGC network (or a baseline) on CIFAR-10, CIFAR-100 or SVHN.

The 2017 recipe: 400 epochs (SVHN 40), Nesterov momentum 0.9, weight decay 1e-4
on weights, biases and BatchNorm scale/shift, lr 0.1 divided by 10 at 1/2, 3/4
and 7/8 of training. See docs/training.md.

    python train_model.py --network=resnet_igc --primary-partition=24 \\
        --secondary-partition=2 --data-dir=DIR
"""
import argparse

from igc_mx.training import args as targs
from igc_mx.training import fit, presets


def build_parser():
    parser = argparse.ArgumentParser(
        prog='train_model.py', description='train on CIFAR-10/100 or SVHN record files',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # The paper's CIFAR network: IGC-L24M2 as a depth-20 residual net.
    targs.add_network_args(parser, network='resnet_igc', depth=20, primary=24, secondary=2)
    targs.add_data_args(parser, presets.datasets_for('small'), 'train.rec', 'test.rec',
                        data_nthreads=4)
    targs.add_fit_args(parser, batch_size=64, log_iters=50)
    return parser


def main(argv=None):
    return fit.main(build_parser(), argv)


if __name__ == '__main__':
    main()
