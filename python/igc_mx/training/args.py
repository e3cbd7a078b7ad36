"""Argument groups shared by the train scripts.

Options whose default is ``None`` are filled from the dataset preset
(:mod:`.presets`) after parsing, so a value given on the command line always wins.
"""
import argparse


def _floats(text):
    return [float(v) for v in text.split(',')]


def _key_value(text):
    if '=' not in text:
        raise argparse.ArgumentTypeError('expected key=value, got %r' % text)
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
    g.add_argument('--depth', type=int, default=depth, help='network depth')
    g.add_argument('--primary-partition', type=int, default=primary,
                   help='primary partition number L')
    g.add_argument('--secondary-partition', type=int, default=secondary,
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
    g.add_argument('--num-examples', type=int, help='training examples per epoch (preset)')
    g.add_argument('--num-classes', type=int, help='number of classes (preset)')
    g.add_argument('--data-shape', type=int, help='image side (preset)')
    g.add_argument('--mean-rgb', type=_floats, help='r,g,b mean (preset)')
    g.add_argument('--std-rgb', type=_floats, help='r,g,b std (preset)')
    g.add_argument('--aug-type', type=int, choices=[0, 1, 2], help='augmentation type (preset)')
    g.add_argument('--data-nthreads', type=int, default=data_nthreads,
                   help='decoding threads per iterator')
    return g


def add_fit_args(parser, batch_size, log_iters):
    g = parser.add_argument_group('Training', 'optimizer, schedule, devices, checkpoints')
    g.add_argument('--gpus', type=str, default='',
                   help='GPU ids, e.g. 0,1; empty (the default) trains on the CPU')
    g.add_argument('--kv-store', type=str, default='device',
                   help='kvstore type: local, device, dist_sync, dist_device_sync, dist_async')
    g.add_argument('--batch-size', type=int, default=batch_size, help='training batch per worker')
    g.add_argument('--test-batch-size', type=int, help='validation batch (preset)')
    g.add_argument('--num-epochs', type=int, help='number of epochs (preset)')
    g.add_argument('--max-batches', type=int,
                   help='cap the batches per epoch (short runs; the lr steps follow)')
    g.add_argument('--max-val-batches', type=int, help='cap the validation batches')
    g.add_argument('--lr', type=float, default=0.1, help='initial learning rate')
    g.add_argument('--lr-factor', type=float, default=0.1, help='lr multiplier at each step')
    g.add_argument('--lr-steps', type=str,
                   help='epochs at which the lr is multiplied by --lr-factor, e.g. 200,300,350 '
                        '(preset)')
    g.add_argument('--mom', type=float, default=0.9, help='Nesterov momentum')
    g.add_argument('--wd', type=float, default=1e-4,
                   help='weight decay on *_weight, *_bias, *_gamma, *_beta')
    g.add_argument('--rand-seed', type=int,
                   help='seed for mxnet, numpy and random (default: from the clock)')
    g.add_argument('--log-dir', type=str, default='./snapshot/', help='root of logs and weights')
    g.add_argument('--log-file', type=str, help='log file (default: derived from the run name)')
    g.add_argument('--exp-name', type=str, help='experiment name inside the run name')
    g.add_argument('--log-iters', type=int, default=log_iters,
                   help='log speed, loss and accuracy every N batches')
    g.add_argument('--model-prefix', type=str,
                   help='checkpoint prefix (default: derived from the run name)')
    g.add_argument('--checkpoint-epochs', type=int,
                   help='save every N epochs (default num_epochs/8); the last epoch is '
                        'always saved')
    g.add_argument('--load-epoch', type=int,
                   help='resume from <model-prefix>-<epoch>.params with the lr schedule restored')
    g.add_argument('--resume-without-states', action='store_true',
                   help='resume from a checkpoint that has no .states file, the momentum '
                        'restarting at 0 (refused otherwise)')
    return g
