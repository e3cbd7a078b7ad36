"""``fit()``: kvstore, devices, seeds, logging, schedule, checkpoints, resume."""
import logging
import os
import random
import sys
import time

import mxnet as mx
import numpy as np

from .. import networks, scoring
from .._environ import environ
from . import checkpoint, logs, netload, optim, presets, schedule
from .data import RecordFileError, count_records


def seed_everything(seed):
    mx.random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def devices(gpus):
    gpus = (gpus or '').strip()
    if not gpus:
        return [mx.cpu()]
    return [mx.gpu(int(i)) for i in gpus.split(',') if i.strip()]


def run_paths(args, rank, num_workers):
    """(log file, model prefix) following the original's layout under --log-dir:
    ``<dataset>[_noaug]/<network>/<run>.txt`` and ``.../weights/<run>/<run>``,
    where ``<run>`` is ``<network>_d<depth>L<L>M<M>_<exp-name or exp><index>`` and
    the index is the first free one (the latest one when resuming)."""
    if args.model_prefix:
        log_file = args.log_file or args.model_prefix + '.txt'
        prefix = args.model_prefix
    else:
        sub = args.dataset + ('_noaug' if args.aug_type == 0 else '')
        run_dir = os.path.join(args.log_dir, sub, args.network)
        base = '%s_d%dL%sM%s_%s' % (args.network, args.depth, args.primary_partition or '',
                                    args.secondary_partition or '', args.exp_name or 'exp')
        if num_workers > 1:
            run = base  # workers cannot agree on a free index without a barrier
        else:
            index = 1
            while os.path.isfile(os.path.join(run_dir, '%s%d.txt' % (base, index))):
                index += 1
            if args.load_epoch is not None:
                index = max(1, index - 1)
            run = '%s%d' % (base, index)
        log_file = args.log_file or os.path.join(run_dir, run + '.txt')
        prefix = os.path.join(run_dir, 'weights', run, run)
    if rank > 0 and not args.log_file:
        log_file = log_file[:-len('.txt')] + '.rank%d.txt' % rank
    return log_file, prefix


def finish_args(args, dataset):
    """Apply the preset and normalize derived options. When the record files have
    an ``.idx``, the number of training examples (if not given) is counted from it,
    and the test batch (if not given) is later capped at each worker's share of the
    test records (``ImageRecordIter`` yields nothing for a batch larger than its part)."""
    if args.data_dir is None:
        args.data_dir = os.path.join('data', dataset)
    if args.num_examples is None:
        args.num_examples = count_records(os.path.join(args.data_dir, args.train_dataset))
    args.val_records = None
    if args.test_batch_size is None:
        args.val_records = count_records(os.path.join(args.data_dir, args.val_dataset))
    presets.apply(args, dataset)
    if isinstance(args.lr_steps, str):
        args.lr_steps = schedule.parse_steps(args.lr_steps)
    if args.rand_seed is None:
        args.rand_seed = int(time.time())  # a different start for every run, as the original
    return args


def fit(args, data_loader, network=None, top_k=0):
    """Train ``network`` (default: the one ``args`` names, see ``netload``) with the
    original recipe; returns the Module."""
    kv = mx.kvstore.create(args.kv_store)
    rank, num_workers = kv.rank, kv.num_workers
    dist = 'dist' in kv.type
    # Updates run on the workers (identical on each, from the summed gradients):
    # the optimizer and its states stay in this process, so checkpoints include
    # the momentum in every mode and the servers never need to import igc_mx.
    update_on_kvstore = os.environ.get('MXNET_UPDATE_ON_KVSTORE', '0')
    local_updates = not dist or update_on_kvstore == '0'
    seed_everything(args.rand_seed)
    if getattr(args, 'val_records', None):
        args.test_batch_size = max(1, min(args.test_batch_size, args.val_records // num_workers))
    if network is None:
        network = netload.load_symbol(args)
    train, val = data_loader(args, kv)  # checks the record files first

    log_file, prefix = run_paths(args, rank, num_workers)
    logs.setup(log_file, rank, num_workers)
    n_params = logs.count_params(network, (1, 3, args.data_shape, args.data_shape))
    logging.info('network parameters: %.4fM', n_params / 1e6)
    logging.info('start with arguments %s', args)
    logging.info('log file %s, checkpoints %s-*.params, kvstore %s (rank %d of %d)',
                 log_file, prefix, kv.type, rank, num_workers)

    updates_per_epoch = schedule.epoch_size(args.num_examples, args.batch_size, num_workers,
                                            args.max_batches)
    # Every worker runs exactly this many batches per epoch: the lr steps land on
    # epoch boundaries, and dist_sync workers cannot wait on each other at the end.
    train = mx.io.ResizeIter(train, updates_per_epoch)
    if args.max_val_batches:
        val = mx.io.ResizeIter(val, args.max_val_batches)

    begin_epoch = args.load_epoch or 0
    schedule.describe(args.lr, args.lr_factor, args.lr_steps, updates_per_epoch, begin_epoch)
    lr_scheduler = schedule.make_scheduler(args.lr, args.lr_factor, args.lr_steps,
                                           updates_per_epoch)

    ctx = devices(args.gpus)
    # Validation counts each image once, also when the last batch is padded.
    mod = scoring.Module(symbol=network, context=ctx)
    arg_params = aux_params = None
    if args.load_epoch is not None:
        load_prefix = checkpoint.rank_prefix(prefix, rank)
        if not os.path.isfile(checkpoint.params_file(load_prefix, args.load_epoch)):
            load_prefix = prefix
        arg_params, aux_params, states = checkpoint.load(load_prefix, args.load_epoch)
        logging.info('resumed from %s at epoch %d, update %d', checkpoint.params_file(
            load_prefix, args.load_epoch), args.load_epoch, begin_epoch * updates_per_epoch)
        if states and local_updates:
            # What Module.load(..., load_optimizer_states=True) does: the momentum
            # is restored when fit() installs the optimizer.
            mod._preload_opt_states = states

    # A kvstore only pays off with several devices or workers.
    kvstore = kv if (dist or len(ctx) > 1) else None
    optimizer_params = {
        'learning_rate': args.lr,
        'momentum': args.mom,
        'wd': args.wd,
        'lr_scheduler': lr_scheduler,
        'begin_num_update': begin_epoch * updates_per_epoch,
    }
    metrics = [mx.metric.create('ce'), mx.metric.create('acc')]
    if top_k:
        metrics.append(mx.metric.create('top_k_accuracy', top_k=top_k))
    save = checkpoint.callback(checkpoint.rank_prefix(prefix, rank), args.checkpoint_epochs,
                               args.num_epochs, module=mod if local_updates else None)
    with environ(MXNET_UPDATE_ON_KVSTORE=update_on_kvstore):  # read by Module.init_optimizer
        mod.fit(train,
                eval_data=val,
                eval_metric=mx.metric.CompositeEvalMetric(metrics),
                kvstore=kvstore,
                optimizer='nesterov',
                optimizer_params=optimizer_params,
                initializer=optim.initializer(),
                arg_params=arg_params,
                aux_params=aux_params,
                allow_missing=False,
                begin_epoch=begin_epoch,
                num_epoch=args.num_epochs,
                batch_end_callback=logs.BatchLogger(args.batch_size, args.log_iters),
                epoch_end_callback=save)
    return mod


def main(parser, dataset_of, data_loader, argv=None, top_k=0):
    """Parse, apply the preset, build the network, train. A bad network choice or a
    record-file problem exits with its one-line message."""
    args = parser.parse_args(argv)
    finish_args(args, dataset_of(args))
    try:
        network = netload.load_symbol(args)
        return fit(args, data_loader, network, top_k=top_k)
    except (RecordFileError, FileNotFoundError, networks.NetworkError) as err:
        sys.exit('error: %s' % err)
