"""``fit()``: kvstore, devices, seeds, logging, schedule, checkpoints, resume."""
import logging
import os
import random
import sys
import time

import mxnet as mx
import numpy as np

from .. import scoring
from .._environ import environ
from . import args as targs
from . import checkpoint, divergence, logs, netload, optim, presets, schedule
from .data import EpochIter, RecordFileError, count_records, epoch_seed


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
        base = (f"{args.network}_d{args.depth}L{args.primary_partition or ''}"
                f"M{args.secondary_partition or ''}_{args.exp_name or 'exp'}")
        if num_workers > 1:
            run = base  # workers cannot agree on a free index without a barrier
        else:
            index = 1
            while os.path.isfile(os.path.join(run_dir, f'{base}{index}.txt')):
                index += 1
            if args.load_epoch is not None:
                index = max(1, index - 1)
            run = f'{base}{index}'
        log_file = args.log_file or os.path.join(run_dir, run + '.txt')
        prefix = os.path.join(run_dir, 'weights', run, run)
    if rank > 0 and not args.log_file:
        log_file = log_file[:-len('.txt')] + f'.rank{rank}.txt'
    return log_file, prefix


def finish_args(args, dataset):
    """Apply the preset and normalize derived options. When the record files have
    an ``.idx``, the number of training examples (if not given) is counted from it,
    and the test batch (if not given) is later capped at each worker's share of the
    test records (``ImageRecordIter`` cannot fill a batch larger than its part)."""
    if args.data_dir is None:
        args.data_dir = os.path.join('data', dataset)
    if args.num_examples is None:
        args.num_examples = count_records(os.path.join(args.data_dir, args.train_dataset))
    args.cap_test_batch = args.test_batch_size is None
    presets.apply(args, dataset)
    if isinstance(args.lr_steps, str):
        args.lr_steps = schedule.parse_steps(args.lr_steps)
    args.seed_from_clock = args.rand_seed is None
    if args.seed_from_clock:
        args.rand_seed = int(time.time())  # a different start for every run, as the original
    return args


def optimizer_params(args, lr_scheduler, begin_num_update):
    """The keyword arguments of the optimizer (``Nesterov``). With ``--dtype float16``
    it keeps float32 master weights and momentum (``multi_precision``), as MXNet's
    float16 recipes do."""
    return {
        'learning_rate': args.lr,
        'momentum': args.mom,
        'wd': args.wd,
        'lr_scheduler': lr_scheduler,
        'begin_num_update': begin_num_update,
        'multi_precision': args.dtype == 'float16',
    }


def network_options(args):
    """``--network-arg`` options, plus ``dtype`` for a float16 run (the builders then cast
    the data to float16 after the input and the scores back to float32 before the loss)."""
    options = list(args.network_arg or [])
    if args.dtype != 'float32':
        options.append(('dtype', args.dtype))
    return options


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
    if network is None:
        network = netload.load_symbol(args)
    make_train, val = data_loader(args, kv)  # checks the record files first

    log_file, prefix = run_paths(args, rank, num_workers)
    resume = None
    if args.load_epoch is not None:
        resume = load_checkpoint(args, prefix, rank, network, local_updates)
    logs.setup(log_file, rank, num_workers)
    n_params = logs.count_params(network, (1, 3, args.data_shape, args.data_shape))
    logging.info('network parameters: %.4fM', n_params / 1e6)
    logging.info('start with arguments %s', args)
    logging.info('log file %s, checkpoints %s-*.params, kvstore %s (rank %d of %d)',
                 log_file, prefix, kv.type, rank, num_workers)
    if args.load_epoch is not None and getattr(args, 'seed_from_clock', False):
        logging.warning('resuming without --rand-seed: the data order and augmentation from '
                        'epoch %d on differ from the interrupted run; pass the rand_seed of '
                        'its "start with arguments" line to resume it exactly', args.load_epoch)

    updates_per_epoch = schedule.epoch_size(args.num_examples, args.batch_size, num_workers,
                                            args.max_batches)
    begin_epoch = args.load_epoch or 0

    # Everything random in an epoch (data order, augmentation, and the global generators,
    # e.g. for dropout, from its first batch on) follows from (seed, epoch, rank), so a
    # resumed run computes what the uninterrupted one did. Every worker runs exactly
    # updates_per_epoch batches: the lr steps land on epoch boundaries, and dist_sync
    # workers cannot wait on each other at the end.
    train = EpochIter(lambda epoch: mx.io.ResizeIter(make_train(epoch), updates_per_epoch),
                      begin_epoch,
                      start=lambda epoch: seed_everything(epoch_seed(args.rand_seed, epoch, rank)))
    if args.max_val_batches:
        val = mx.io.ResizeIter(val, args.max_val_batches)

    schedule.describe(args.lr, args.lr_factor, args.lr_steps, updates_per_epoch, begin_epoch)
    lr_scheduler = schedule.make_scheduler(args.lr, args.lr_factor, args.lr_steps,
                                           updates_per_epoch)

    ctx = devices(args.gpus)
    # Validation counts each image once, also when the last batch is padded.
    mod = scoring.Module(symbol=network, context=ctx)
    arg_params = aux_params = None
    if resume is not None:
        path, arg_params, aux_params, states = resume
        logging.info('resumed from %s at epoch %d, update %d', path, args.load_epoch,
                     begin_epoch * updates_per_epoch)
        if states:
            # What Module.load(..., load_optimizer_states=True) does: the momentum
            # is restored when fit() installs the optimizer.
            mod._preload_opt_states = states
        elif local_updates:
            logging.warning('%s has no optimizer states beside it: the momentum restarts '
                            'at 0 (--resume-without-states)', path)
        else:
            logging.warning('the momentum restarts at 0: with MXNET_UPDATE_ON_KVSTORE=1 the '
                            'optimizer lives on the servers, whose states are not saved')
    checkpoint.remove_stale_temps(checkpoint.rank_prefix(prefix, rank))

    # A kvstore only pays off with several devices or workers.
    kvstore = kv if (dist or len(ctx) > 1) else None
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
                optimizer_params=optimizer_params(args, lr_scheduler,
                                                  begin_epoch * updates_per_epoch),
                initializer=optim.initializer(),
                arg_params=arg_params,
                aux_params=aux_params,
                allow_missing=False,
                begin_epoch=begin_epoch,
                num_epoch=args.num_epochs,
                batch_end_callback=[
                    divergence.StopOnNonFiniteLoss(args.lr, updates_per_epoch),
                    logs.BatchLogger(args.batch_size, args.log_iters)],
                epoch_end_callback=save)
    return mod


def load_checkpoint(args, prefix, rank, network, local_updates):
    """(params path, arg_params, aux_params, states path or None) of ``--load-epoch``:
    this rank's checkpoint, else rank 0's. CheckpointError when it is unreadable, does
    not fit ``network``, or lacks its optimizer states and ``--resume-without-states``
    was not given."""
    load_prefix = checkpoint.rank_prefix(prefix, rank)
    if not os.path.isfile(checkpoint.params_file(load_prefix, args.load_epoch)):
        load_prefix = prefix
    path = checkpoint.params_file(load_prefix, args.load_epoch)
    arg_params, aux_params, states = checkpoint.load(load_prefix, args.load_epoch)
    checkpoint.check_fits(path, network, (1, 3, args.data_shape, args.data_shape),
                          arg_params, aux_params)
    if states is None and local_updates and not args.resume_without_states:
        raise checkpoint.CheckpointError(
            f'{path} has no optimizer states '
            f'({checkpoint.states_file(load_prefix, args.load_epoch)}): resuming would restart '
            'the momentum at 0, '
            'which the uninterrupted run did not do; pass --resume-without-states to resume '
            'so anyway')
    return path, arg_params, aux_params, (states if local_updates else None)


def main(parser, dataset_of, data_loader, argv=None, top_k=0):
    """Parse, apply the preset, build the network, train. Bad options, including a network
    that cannot be built from them, are ``parser.error``s (exit status 2); a record-file or
    checkpoint problem, a log or checkpoint that cannot be written, and a loss that turns
    NaN, exit with a one-line error (status 1)."""
    args = parser.parse_args(argv)
    finish_args(args, dataset_of(args))
    targs.check(parser, args)
    args.network_arg = network_options(args)
    try:
        network = netload.load_symbol(args)
    except (ValueError, FileNotFoundError) as err:   # NetworkError is a ValueError
        parser.error(str(err))
    try:
        return fit(args, data_loader, network, top_k=top_k)
    except (RecordFileError, checkpoint.CheckpointError, divergence.TrainingDiverged) as err:
        sys.exit(f'error: {err}')
    except OSError as err:   # the log or checkpoint folder: read-only, full, not a folder
        sys.exit('error: cannot write {}: {}'.format(err.filename or 'a file', err.strerror or err))
