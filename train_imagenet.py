"""Train an IGC network (or ResNet-18) on ImageNet with the 2017 recipe.

120 epochs, batch 256, Nesterov momentum 0.9, weight decay 1e-4 on weights,
biases and BatchNorm scale/shift, lr 0.1 divided by 10 every 30 epochs,
scale/aspect/colour augmentation on records with short side 480, top-5 metric.
See docs/training.md.

    python train_imagenet.py --network=resnet_igc_imgnet_d18 --primary-partition=4 \\
        --secondary-partition=32 --gpus=0,1,2,3 --data-dir=DIR
"""
import argparse

from igc_mx.training import args as targs
from igc_mx.training import fit, presets


def build_parser():
    parser = argparse.ArgumentParser(
        prog='train_imagenet.py', description='train on ImageNet record files',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # Unset partitions take the builders' defaults: ResNet-18 C=64, IGC-L100M2. Without
    # --secondary-partition the IGC builder keeps M=2 and doubles L per stage (the
    # original README's command); with it, L stays fixed and M doubles.
    targs.add_network_args(parser, network='resnet_igc_imgnet_d18', depth=18, primary=None,
                           secondary=None)
    targs.add_data_args(parser, presets.datasets_for('imagenet'), 'imagenet_train.rec',
                        'imagenet_val.rec', data_nthreads=8)
    parser.add_argument('--fb-mean', action='store_true',
                        help="normalize with fb.resnet.torch's mean/std instead of the authors'")
    targs.add_fit_args(parser, batch_size=256, log_iters=10)
    return parser


def main(argv=None):
    return fit.main(build_parser(), argv, top_k=5)


if __name__ == '__main__':
    main()
