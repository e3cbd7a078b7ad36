"""``fit(config)``: kvstore, devices, seeds, logging, schedule, checkpoints, resume."""
import logging
import os
import random
import signal
import sys

import mxnet as mx
import numpy as np

from .. import atomic, model_files
from .._environ import environ
from . import checkpoint, divergence, logs, optim, schedule
from .config import check_gpus_visible, check_network, resolve
from .data import EpochIter, epoch_seed, training_iters
from .interrupts import Interrupts
from .module import Module
from .records import RecordFileError


def seed_everything(seed):
    mx.random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def contexts(gpus):
    """The MXNet contexts of a run on the GPU ids ``gpus`` (a tuple; empty: the CPU)."""
    return [mx.gpu(i) for i in gpus] if gpus else [mx.cpu()]


def run_paths(config, rank, num_workers):
    """(log file, model prefix) following the original's layout under --log-dir:
    ``<dataset>[_noaug]/<network>/<run>.txt`` and ``.../weights/<run>/<run>``,
    where ``<run>`` is ``<network>_d<depth>L<L>M<M>_<exp-name or exp><index>`` and
    the index is the first free one (the latest one when resuming)."""
    run, net, data = config.run, config.network, config.data
    if run.model_prefix:
        log_file = run.log_file or run.model_prefix + '.txt'
        prefix = run.model_prefix
    else:
        sub = data.dataset + ('_noaug' if data.aug_type == 0 else '')
        run_dir = os.path.join(run.log_dir, sub, net.name)
        base = (f"{net.name}_d{net.depth}L{net.primary_partition or ''}"
                f"M{net.secondary_partition or ''}_{run.exp_name or 'exp'}")
        if num_workers > 1:
            name = base  # workers cannot agree on a free index without a barrier
        else:
            index = 1
            while os.path.isfile(os.path.join(run_dir, f'{base}{index}.txt')):
                index += 1
            if run.load_epoch is not None:
                index = max(1, index - 1)
            name = f'{base}{index}'
        log_file = run.log_file or os.path.join(run_dir, name + '.txt')
        prefix = os.path.join(run_dir, 'weights', name, name)
    if rank > 0 and not run.log_file:
        log_file = log_file[:-len('.txt')] + f'.rank{rank}.txt'
    return log_file, prefix


def optimizer_params(optim, lr_scheduler, begin_num_update):
    """The keyword arguments of the optimizer (``Nesterov``). With ``--dtype float16``
    it keeps float32 master weights and momentum (``multi_precision``), as MXNet's
    float16 recipes do."""
    return {
        'learning_rate': optim.lr,
        'momentum': optim.momentum,
        'wd': optim.wd,
        'lr_scheduler': lr_scheduler,
        'begin_num_update': begin_num_update,
        'multi_precision': optim.dtype == 'float16',
    }


def run_inputs(config, resume=None):
    """The files a run reads, which none of its outputs may be: the record files and their
    indexes, the checkpoint it resumes from, and the --network-dir modules."""
    data = config.data
    inputs = [data.train_rec, data.val_rec]
    inputs += [os.path.splitext(rec)[0] + '.idx' for rec in (data.train_rec, data.val_rec)]
    if resume is not None:
        path, _, _, states = resume
        inputs += [path, states]
    if config.network.directory:
        directory = config.network.directory
        inputs += [os.path.join(directory, n) for n in sorted(os.listdir(directory))]
    return inputs


def fit(config, network=None, interrupts=None):
    """Train ``network`` (default: ``config.network.build()``) with the original recipe;
    returns the Module. ``interrupts`` (an ``Interrupts``) is checked after every batch,
    of training and of validation."""
    run, data = config.run, config.data
    kv = mx.kvstore.create(run.kv_store)
    rank, num_workers = kv.rank, kv.num_workers
    dist = 'dist' in kv.type
    # Updates run on the workers (identical on each, from the summed gradients):
    # the optimizer and its states stay in this process, so checkpoints include
    # the momentum in every mode and the servers never need to import igc_mx.
    update_on_kvstore = os.environ.get('MXNET_UPDATE_ON_KVSTORE', '0')
    local_updates = not dist or update_on_kvstore == '0'
    seed_everything(run.seed)
    if network is None:
        network = config.network.build()
    make_train, val = training_iters(data, run.seed, kv)  # checks the record files first

    log_file, prefix = run_paths(config, rank, num_workers)
    resume = None
    if run.load_epoch is not None:
        resume = load_checkpoint(config, prefix, rank, network, local_updates)
    inputs = run_inputs(config, resume)
    checkpoint.check_targets(checkpoint.rank_prefix(prefix, rank),
                             checkpoint.saved_epochs(run.load_epoch or 0, run.num_epochs,
                                                     run.checkpoint_epochs), inputs)
    logs.setup(log_file, rank, num_workers, inputs)
    n_params = logs.count_params(network, (1, *data.image_shape))
    logging.info('network parameters: %.4fM', n_params / 1e6)
    logging.info('start with configuration %s', config)
    logging.info('log file %s, checkpoints %s-*.params, kvstore %s (rank %d of %d)',
                 log_file, prefix, kv.type, rank, num_workers)
    if run.load_epoch is not None and run.seed_from_clock:
        logging.warning('resuming without --rand-seed: the data order and augmentation from '
                        'epoch %d on differ from the interrupted run; pass the seed of its '
                        '"start with configuration" line to resume it exactly', run.load_epoch)

    updates_per_epoch = schedule.epoch_size(data.num_examples, data.batch_size, num_workers,
                                            run.max_batches)
    begin_epoch = run.load_epoch or 0

    # Everything random in an epoch (data order, augmentation, and the global generators,
    # e.g. for dropout, from its first batch on) follows from (seed, epoch, rank), so a
    # resumed run computes what the uninterrupted one did. Every worker runs exactly
    # updates_per_epoch batches: the lr steps land on epoch boundaries, and dist_sync
    # workers cannot wait on each other at the end.
    train = EpochIter(lambda epoch: mx.io.ResizeIter(make_train(epoch), updates_per_epoch),
                      begin_epoch,
                      start=lambda epoch: seed_everything(epoch_seed(run.seed, epoch, rank)))
    if run.max_val_batches:
        val = mx.io.ResizeIter(val, run.max_val_batches)

    opt = config.optim
    schedule.describe(opt.lr, opt.lr_factor, opt.lr_steps, updates_per_epoch, begin_epoch)
    lr_scheduler = schedule.make_scheduler(opt.lr, opt.lr_factor, opt.lr_steps,
                                           updates_per_epoch)

    ctx = contexts(run.gpus)
    # Validation counts each image once, also when the last batch is padded, and the
    # parameters are read once the engine is done (training.module).
    mod = Module(symbol=network, context=ctx)
    arg_params = aux_params = None
    if resume is not None:
        path, arg_params, aux_params, states = resume
        logging.info('resumed from %s at epoch %d, update %d', path, run.load_epoch,
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
    # the temporary files of checkpoint writes that a killed run left
    atomic.remove_stale_temps(*checkpoint.owned_by(checkpoint.rank_prefix(prefix, rank)))

    # A kvstore only pays off with several devices or workers.
    kvstore = kv if (dist or len(ctx) > 1) else None
    metrics = [mx.metric.create('ce'), mx.metric.create('acc')]
    if run.top_k:
        metrics.append(mx.metric.create('top_k_accuracy', top_k=run.top_k))
    saver = checkpoint.Saver(checkpoint.rank_prefix(prefix, rank), run.checkpoint_epochs,
                             run.num_epochs, opt.lr, module=mod if local_updates else None)
    check_interrupt = (interrupts or Interrupts()).check
    with environ(MXNET_UPDATE_ON_KVSTORE=update_on_kvstore):  # read by Module.init_optimizer
        mod.fit(train,
                eval_data=val,
                eval_metric=mx.metric.CompositeEvalMetric(metrics),
                kvstore=kvstore,
                optimizer='nesterov',
                optimizer_params=optimizer_params(opt, lr_scheduler,
                                                  begin_epoch * updates_per_epoch),
                initializer=optim.initializer(),
                arg_params=arg_params,
                aux_params=aux_params,
                allow_missing=False,
                begin_epoch=begin_epoch,
                num_epoch=run.num_epochs,
                batch_end_callback=[
                    check_interrupt,
                    divergence.StopOnNonFiniteLoss(opt.lr, updates_per_epoch),
                    logs.BatchLogger(data.batch_size, run.log_iters)],
                epoch_end_callback=saver.epoch_end,
                eval_end_callback=saver.validation_end,
                eval_batch_end_callback=check_interrupt)
    check_interrupt()
    return mod


def load_checkpoint(config, prefix, rank, network, local_updates):
    """(params path, arg_params, aux_params, states path or None) of ``--load-epoch``:
    this rank's checkpoint, else rank 0's. CheckpointError when it is unreadable, does
    not fit ``network``, or lacks its optimizer states and ``--resume-without-states``
    was not given."""
    epoch = config.run.load_epoch
    load_prefix = checkpoint.rank_prefix(prefix, rank)
    if not os.path.isfile(checkpoint.params_file(load_prefix, epoch)):
        load_prefix = prefix
    path = checkpoint.params_file(load_prefix, epoch)
    arg_params, aux_params, states = checkpoint.load(load_prefix, epoch)
    data_shape = (1, *config.data.image_shape)
    checkpoint.check_fits(path, network, data_shape, arg_params, aux_params)
    checkpoint.check_finite(path, arg_params, aux_params)
    if states is not None and local_updates:
        checkpoint.check_states_fit(states, model_files.parameter_shapes(network, data_shape)[0],
                                    len(contexts(config.run.gpus)))
    if states is None and local_updates and not config.run.resume_without_states:
        raise checkpoint.CheckpointError(
            f'{path} has no optimizer states ({checkpoint.states_file(load_prefix, epoch)}): '
            'resuming would restart the momentum at 0, which the uninterrupted run did not '
            'do; pass --resume-without-states to resume so anyway')
    return path, arg_params, aux_params, (states if local_updates else None)


#: the exit status of a run stopped by Ctrl-C (SIGINT), as a shell reports it
INTERRUPTED = 130


def main(parser, argv=None, top_k=0):
    """Parse, resolve the configuration, build the network, train. Bad options, including
    a network that cannot be built from them or does not fit the dataset, and outputs that
    must not be written (``igc_mx.atomic.check_target``), are ``parser.error``s (exit
    status 2); a record-file or checkpoint problem, a log or checkpoint that cannot be
    written, and a loss or parameters that turn NaN, exit with a one-line error (status 1);
    Ctrl-C at any point with one line and status 130."""
    args = parser.parse_args(argv)
    with Interrupts() as interrupts:
        try:
            module = _main(parser, args, top_k, interrupts)
            interrupts.check()   # one that arrived while fit's iterators were freed
            return module
        except KeyboardInterrupt:
            # a second Ctrl-C while the process shuts down ends it at once
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            print('error: interrupted (Ctrl-C); the checkpoints saved so far are complete: '
                  'resume from the last one with --load-epoch', file=sys.stderr)
            sys.exit(INTERRUPTED)


def _main(parser, args, top_k, interrupts):
    try:
        config = resolve(args, top_k)
        check_gpus_visible(config.run.gpus)
        network = config.network.build()
        check_network(config, network)
    except (ValueError, FileNotFoundError) as err:   # ConfigError, NetworkError
        parser.error(str(err))
    try:
        return fit(config, network, interrupts)
    except atomic.TargetError as err:
        parser.error(str(err))
    except (RecordFileError, checkpoint.CheckpointError, divergence.TrainingDiverged) as err:
        sys.exit(f'error: {err}')
    except OSError as err:   # the log or checkpoint folder: read-only, full, not a folder
        sys.exit(f'error: cannot write {err.filename or "a file"}: {err.strerror or err}')
