"""Atomic checkpoints in MXNet's layout.

``<prefix>-symbol.json``, ``<prefix>-%04d.params`` (``arg:``/``aux:`` keys, as
``mx.model.save_checkpoint``) and, where the optimizer lives in this process,
``<prefix>-%04d.states`` (the momentum). Each file is written to a temporary
name in the same directory and renamed, so a crash never leaves a truncated
file under a final name. In distributed runs rank 0 saves to ``<prefix>`` and
rank r > 0 to ``<prefix>-r`` (MXNet's convention: BatchNorm statistics differ
per worker; the weights do not).
"""
import logging
import os

import mxnet as mx

from ..atomic import atomic_path


def rank_prefix(prefix, rank):
    return prefix if rank == 0 else '%s-%d' % (prefix, rank)


def params_file(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def states_file(prefix, epoch):
    return '%s-%04d.states' % (prefix, epoch)


def save(prefix, epoch, symbol, arg_params, aux_params, module=None):
    """Save one checkpoint atomically; optimizer states too when ``module`` is given."""
    with atomic_path('%s-symbol.json' % prefix) as tmp:
        symbol.save(tmp)
    data = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    data.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    with atomic_path(params_file(prefix, epoch)) as tmp:
        mx.nd.save(tmp, data)
    if module is not None:
        with atomic_path(states_file(prefix, epoch)) as tmp:
            module.save_optimizer_states(tmp)
    logging.info('Saved checkpoint to "%s"', params_file(prefix, epoch))


def callback(prefix, period, num_epochs, module=None):
    """``epoch_end_callback`` saving every ``period`` epochs and after the last one."""
    def _callback(epoch, symbol, arg_params, aux_params):
        done = epoch + 1
        if done % period == 0 or done == num_epochs:
            save(prefix, done, symbol, arg_params, aux_params, module)
    return _callback


def load(prefix, epoch):
    """(arg_params, aux_params, states path or None) of a saved epoch."""
    path = params_file(prefix, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError('no checkpoint %s to resume from (--model-prefix %s '
                                '--load-epoch %d)' % (path, prefix, epoch))
    arg_params, aux_params = {}, {}
    for key, value in mx.nd.load(path).items():
        kind, name = key.split(':', 1)
        (arg_params if kind == 'arg' else aux_params)[name] = value
    states = states_file(prefix, epoch)
    return arg_params, aux_params, states if os.path.isfile(states) else None
