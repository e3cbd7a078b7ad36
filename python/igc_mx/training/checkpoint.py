"""Atomic checkpoints in MXNet's layout.

``<prefix>-symbol.json``, ``<prefix>-%04d.params`` (``arg:``/``aux:`` keys, as
``mx.model.save_checkpoint``) and, where the optimizer lives in this process,
``<prefix>-%04d.states`` (the momentum). Each file is written to a temporary
name in the same directory and renamed, so a crash never leaves a truncated
file under a final name. The ``.states`` file is written before the ``.params``
file, so an epoch's ``.params`` exists only once its checkpoint is complete.
Float16 parameters are saved as float32. In distributed runs rank 0 saves to
``<prefix>`` and rank r > 0 to ``<prefix>-r`` (MXNet's convention: BatchNorm
statistics differ per worker; the weights do not).
"""
import logging
import os
import pickle
import re

import mxnet as mx
import numpy as np

from .. import model_files
from ..atomic import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint to resume from is missing, incomplete, unreadable or does not fit
    the network."""


def rank_prefix(prefix, rank):
    return prefix if rank == 0 else f'{prefix}-{rank}'


def params_file(prefix, epoch):
    return f'{prefix}-{epoch:04d}.params'


def states_file(prefix, epoch):
    return f'{prefix}-{epoch:04d}.states'


def owned_by(prefix):
    """(directory, select): the folder of ``prefix``'s checkpoint files and a test of a file
    name being one of them, for ``atomic.remove_stale_temps``."""
    directory, base = os.path.split(os.path.abspath(prefix))
    own = re.compile(re.escape(base) + r'-(\d{4,}\.(params|states)|symbol\.json)$')
    return directory, own.match


def _float32(array):
    array = array.as_in_context(mx.cpu())
    return array.astype(np.float32) if array.dtype == np.float16 else array


def save(prefix, epoch, symbol, arg_params, aux_params, module=None):
    """Save one checkpoint atomically; optimizer states too when ``module`` is given."""
    with atomic_path(f'{prefix}-symbol.json') as tmp:
        symbol.save(tmp)
    if module is not None:
        with atomic_path(states_file(prefix, epoch)) as tmp:
            module.save_optimizer_states(tmp)
    data = {f'arg:{k}': _float32(v) for k, v in arg_params.items()}
    data.update({f'aux:{k}': _float32(v) for k, v in aux_params.items()})
    with atomic_path(params_file(prefix, epoch)) as tmp:   # last: the checkpoint exists
        mx.nd.save(tmp, data)
    logging.info('Saved checkpoint to "%s"', params_file(prefix, epoch))


def callback(prefix, period, num_epochs, module=None):
    """``epoch_end_callback`` saving every ``period`` epochs and after the last one."""
    def _callback(epoch, symbol, arg_params, aux_params):
        done = epoch + 1
        if done % period == 0 or done == num_epochs:
            save(prefix, done, symbol, arg_params, aux_params, module)
    return _callback


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def load(prefix, epoch):
    """(arg_params, aux_params, states path or None) of a saved epoch. CheckpointError
    when the ``.params`` file is missing or unreadable, or the ``.states`` file beside it
    is unreadable."""
    path = params_file(prefix, epoch)
    if not os.path.isfile(path):
        raise CheckpointError(f'no checkpoint {path} to resume from (--model-prefix {prefix} '
                              f'--load-epoch {epoch})')
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise CheckpointError(f'checkpoint {path} is not readable ({_first_line(err)})') from None
    if not isinstance(saved, dict) or not all(
            k.split(':', 1)[0] in ('arg', 'aux') and ':' in k for k in saved):
        raise CheckpointError(f'checkpoint {path} does not hold arg:/aux: arrays')
    arg_params, aux_params = {}, {}
    for key, value in saved.items():
        kind, name = key.split(':', 1)
        (arg_params if kind == 'arg' else aux_params)[name] = value
    states = states_file(prefix, epoch)
    if not os.path.isfile(states):
        return arg_params, aux_params, None
    try:
        with open(states, 'rb') as f:
            content = pickle.load(f)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise CheckpointError(f'optimizer states {states} are not readable '
                              f'({_first_line(err)})') from None
    if not isinstance(content, (dict, tuple)):
        raise CheckpointError(f'optimizer states {states} do not hold an optimizer state')
    return arg_params, aux_params, states


def check_fits(path, symbol, data_shape, arg_params, aux_params):
    """CheckpointError unless the saved arrays are exactly the network's parameters,
    with its shapes."""
    wanted, aux_shapes = model_files.parameter_shapes(symbol, data_shape)
    wanted.update(aux_shapes)
    have = dict((n, tuple(v.shape)) for n, v in arg_params.items())
    have.update((n, tuple(v.shape)) for n, v in aux_params.items())
    missing = sorted(set(wanted) - set(have))
    extra = sorted(set(have) - set(wanted))
    # the batch dimension of data_shape does not reach any parameter
    shapes = [n for n in sorted(set(wanted) & set(have)) if wanted[n] != have[n]]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append('lacks {}'.format(', '.join(missing[:3])) + (' ...' if len(missing) > 3
                                                              else ''))
        if extra:
            parts.append('has {}, which the network has not'.format(', '.join(extra[:3]))
                         + (' ...' if len(extra) > 3 else ''))
        for n in shapes[:3]:
            parts.append(f'{n} is {have[n]}, the network needs {wanted[n]}')
        raise CheckpointError(f"checkpoint {path} does not fit this network: {'; '.join(parts)} "
                              '(same --network, --depth and partitions as the run that saved '
                              'it?)')
