"""Argument groups shared by the train scripts, and the argparse types they use.

Options whose default is ``None`` are filled from the dataset preset when the
configuration is resolved (:mod:`.config`), so a value given on the command line always
wins.
"""
import argparse
import itertools
import math

KV_STORES = ('local', 'device', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async')
DTYPES = ('float32', 'float16')


def _number(cast, what, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: ``cast`` of the text, finite and within the bounds, else an
    error that says what was expected."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if (value is None or not math.isfinite(value)
                or (low is not None and (value <= low if low_open else value < low))
                or (high is not None and (value >= high if high_open else value > high))):
            raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, 'a positive integer', 1)
non_negative_int = _number(int, 'a non-negative integer', 0)
positive_float = _number(float, 'a positive finite number', 0, low_open=True)
non_negative_float = _number(float, 'a finite number >= 0', 0)
lr_factor = _number(float, 'a number in (0, 1]', 0, 1, low_open=True)
momentum = _number(float, 'a number in [0, 1)', 0, 1, high_open=True)


finite_float = _number(float, 'a finite number')


def _floats(text, item=finite_float):
    """Comma-separated numbers, each checked by ``item``."""
    return [item(v.strip()) for v in text.split(',') if v.strip()]


def numbers(text):
    """Comma-separated finite numbers, e.g. a mean per channel (r,g,b)."""
    return _floats(text)


def positive_numbers(text):
    """Comma-separated positive finite numbers, e.g. a std per channel (r,g,b)."""
    return _floats(text, positive_float)


def epochs(text):
    """Strictly increasing comma-separated epochs > 0 (fractions allowed), e.g. 200,300,350:
    a step at epoch 0 or a repeated step would not be a step of the schedule."""
    values = _floats(text, _number(float, 'an epoch > 0', 0, low_open=True))
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise argparse.ArgumentTypeError(f'expected strictly increasing epochs, got {text!r}')
    return values


def gpu_ids(text):
    """Comma-separated GPU ids, e.g. 0,1, as a tuple of ints; empty for the CPU."""
    ids = tuple(non_negative_int(v.strip()) for v in text.split(',') if v.strip())
    if len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f'expected distinct GPU ids, got {text!r}')
    return ids


def _key_value(text):
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'expected key=value, got {text!r}')
    key, value = text.split('=', 1)
    for cast in (int, float):
        try:
            return key.replace('-', '_'), cast(value)
        except ValueError:
            pass
    if value.lower() in ('true', 'false'):
        return key.replace('-', '_'), value.lower() == 'true'
    return key.replace('-', '_'), value


def add_network_args(parser, network, depth, primary, secondary):
    g = parser.add_argument_group('Network', 'igc_mx.networks.get_symbol(name, ...) and its '
                                  'arguments')
    g.add_argument('--network', type=str, default=network,
                   help='network name: one of igc_mx.networks.list_networks(), or a module '
                        'of --network-dir')
    g.add_argument('--network-dir', type=str, default=None,
                   help='directory of your own network modules: each <name>.py defining '
                        'get_symbol(num_classes, depth, primary_partition, '
                        'secondary_partition, ...) becomes network <name>')
    g.add_argument('--depth', type=positive_int, default=depth, help='network depth')
    g.add_argument('--primary-partition', type=positive_int, default=primary,
                   help='primary partition number L')
    g.add_argument('--secondary-partition', type=positive_int, default=secondary,
                   help='secondary partition number M')
    g.add_argument('--network-arg', type=_key_value, action='append', default=[],
                   metavar='KEY=VALUE', help='extra keyword argument for get_symbol (repeatable)')
    return g


def add_data_args(parser, dataset_choices, train_rec, val_rec, data_nthreads):
    g = parser.add_argument_group('Data', 'record files, normalization and augmentation')
    g.add_argument('--dataset', type=str, default=dataset_choices[0], choices=dataset_choices,
                   help='dataset preset')
    g.add_argument('--data-dir', type=str,
                   help='directory holding the record files (default: data/<dataset>)')
    g.add_argument('--train-dataset', type=str, default=train_rec, help='training record file')
    g.add_argument('--val-dataset', type=str, default=val_rec, help='validation record file')
    g.add_argument('--num-examples', type=positive_int,
                   help='training examples per epoch (preset)')
    g.add_argument('--num-classes', type=positive_int, help='number of classes (preset)')
    g.add_argument('--data-shape', type=positive_int, help='image side (preset)')
    g.add_argument('--mean-rgb', type=numbers, help='mean per channel, r,g,b (preset)')
    g.add_argument('--std-rgb', type=positive_numbers, help='std per channel, r,g,b (preset)')
    g.add_argument('--aug-type', type=int, choices=[0, 1, 2], help='augmentation type (preset)')
    g.add_argument('--data-nthreads', type=positive_int, default=data_nthreads,
                   help='decoding threads per iterator')
    parser.set_defaults(fb_mean=False)   # train_imagenet.py's --fb-mean
    return g


def add_fit_args(parser, batch_size, log_iters):
    g = parser.add_argument_group('Training', 'optimizer, schedule, devices, checkpoints')
    g.add_argument('--gpus', type=gpu_ids, default=(),
                   help='GPU ids, e.g. 0,1; empty (the default) trains on the CPU')
    g.add_argument('--kv-store', type=str, default='device', choices=KV_STORES,
                   help='kvstore type')
    g.add_argument('--dtype', default='float32', choices=DTYPES,
                   help='float16: the network computes in float16 (GPU only) with float32 '
                        'master weights in the optimizer; checkpoints are float32')
    g.add_argument('--batch-size', type=positive_int, default=batch_size,
                   help='training batch per worker')
    g.add_argument('--test-batch-size', type=positive_int, help='validation batch (preset)')
    g.add_argument('--num-epochs', type=positive_int, help='number of epochs (preset)')
    g.add_argument('--max-batches', type=positive_int,
                   help='cap the batches per epoch (short runs; the lr steps follow)')
    g.add_argument('--max-val-batches', type=positive_int, help='cap the validation batches')
    g.add_argument('--lr', type=positive_float, default=0.1, help='initial learning rate')
    g.add_argument('--lr-factor', type=lr_factor, default=0.1,
                   help='lr multiplier at each step')
    g.add_argument('--lr-steps', type=epochs,
                   help='epochs at which the lr is multiplied by --lr-factor, e.g. 200,300,350 '
                        '(preset)')
    g.add_argument('--mom', type=momentum, default=0.9, help='Nesterov momentum')
    g.add_argument('--wd', type=non_negative_float, default=1e-4,
                   help='weight decay on *_weight, *_bias, *_gamma, *_beta')
    g.add_argument('--rand-seed', type=non_negative_int,
                   help='seed for mxnet, numpy and random (default: from the clock)')
    g.add_argument('--log-dir', type=str, default='./snapshot/', help='root of logs and weights')
    g.add_argument('--log-file', type=str, help='log file (default: derived from the run name)')
    g.add_argument('--exp-name', type=str, help='experiment name inside the run name')
    g.add_argument('--log-iters', type=positive_int, default=log_iters,
                   help='log speed, loss and accuracy every N batches')
    g.add_argument('--model-prefix', type=str,
                   help='checkpoint prefix (default: derived from the run name)')
    g.add_argument('--checkpoint-epochs', type=positive_int,
                   help='save every N epochs (default num_epochs/8); the last epoch is '
                        'always saved')
    g.add_argument('--load-epoch', type=positive_int,
                   help='resume from <model-prefix>-<epoch>.params with the lr schedule restored')
    g.add_argument('--resume-without-states', action='store_true',
                   help='resume from a checkpoint that has no .states file, the momentum '
                        'restarting at 0 (refused otherwise)')
    return g
