"""Atomic checkpoints in MXNet's layout.

``<prefix>-symbol.json``, ``<prefix>-%04d.params`` (``arg:``/``aux:`` keys, as
``mx.model.save_checkpoint``) and, where the optimizer lives in this process,
``<prefix>-%04d.states`` (the momentum). Each file is written to a temporary
name in the same directory and renamed, so a crash never leaves a truncated
file under a final name. The ``.states`` file is written before the ``.params``
file, so an epoch's ``.params`` exists only once its checkpoint is complete.
Float16 parameters are saved as float32. A checkpoint holds finite numbers only: one
whose parameters or optimizer states are NaN or infinite is neither written nor resumed
from. In distributed runs rank 0 saves to
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
from ..atomic import atomic_path, check_target
from . import divergence


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


def saved_epochs(begin_epoch, num_epochs, period):
    """The epochs after which a run from ``begin_epoch`` to ``num_epochs`` saves: every
    ``period`` epochs and the last."""
    return [e for e in range(begin_epoch + 1, num_epochs + 1)
            if e % period == 0 or e == num_epochs]


def check_targets(prefix, epochs, inputs=()):
    """TargetError (``igc_mx.atomic.check_target``) unless every file the checkpoints of
    ``epochs`` write is a regular file or a new path, and none of ``inputs``."""
    paths = [f'{prefix}-symbol.json']
    for epoch in epochs:
        paths += [states_file(prefix, epoch), params_file(prefix, epoch)]
    for path in paths:
        check_target(path, inputs, 'checkpoint file')


def _state_arrays(state):
    """The NDArrays of one optimizer state: an array, None, or a tuple of them."""
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _state_arrays(s)]
    return [] if state is None else [state]


def _non_finite_state(states):
    """The index of the first optimizer state that holds a NaN or an infinity, or None."""
    for index in sorted(states):
        for array in _state_arrays(states[index]):
            if not np.isfinite(array.asnumpy()).all():
                return index
    return None


def _float32(array):
    array = array.as_in_context(mx.cpu())
    return array.astype(np.float32) if array.dtype == np.float16 else array


def save(prefix, epoch, symbol, arg_params, aux_params, module=None):
    """Save one checkpoint atomically; optimizer states too when ``module`` is given.
    TrainingDiverged, and nothing written, when a parameter or state is not finite."""
    name = divergence.first_non_finite(arg_params) or divergence.first_non_finite(aux_params)
    if name is not None:
        raise divergence.TrainingDiverged(f'{name} is not finite: checkpoint '
                                          f'{params_file(prefix, epoch)} is not written')
    updater = getattr(module, '_updater', None)
    index = None if updater is None else _non_finite_state(updater.states)
    if index is not None:
        name = module._optimizer.idx2name.get(index, index)
        raise divergence.TrainingDiverged(f'the optimizer state of {name} is not finite: '
                                          f'checkpoint {params_file(prefix, epoch)} is not '
                                          'written')
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


class Saver:
    """``Module.fit``'s ``epoch_end_callback`` (``epoch_end``) and ``eval_end_callback``
    (``validation_end``): saves every ``period`` epochs and after the last one, once the
    epoch's parameters (at its end) and validation loss (after it) are found finite
    (``divergence``): a checkpoint is written after its epoch's validation. ``lr`` is
    named in the error that stops a diverged run."""

    def __init__(self, prefix, period, num_epochs, lr, module=None):
        self.prefix, self.period, self.num_epochs = prefix, period, num_epochs
        self.lr, self.module = lr, module
        self.pending = None

    def epoch_end(self, epoch, symbol, arg_params, aux_params):
        divergence.check_parameters(epoch, arg_params, aux_params, self.lr)
        done = epoch + 1
        due = done % self.period == 0 or done == self.num_epochs
        self.pending = (done, symbol, arg_params, aux_params) if due else None

    def validation_end(self, param):
        divergence.check_validation(param.epoch, param.eval_metric, self.lr)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            save(self.prefix, *pending, module=self.module)


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


def check_finite(path, arg_params, aux_params):
    """CheckpointError naming the first parameter of the checkpoint ``path`` that is not
    finite: a run resumed from it would train on NaN."""
    name = divergence.first_non_finite(arg_params) or divergence.first_non_finite(aux_params)
    if name is not None:
        raise CheckpointError(f'checkpoint {path} holds NaN or infinite values ({name}): a run '
                              'resumed from it would train on them; resume from an earlier '
                              'checkpoint with a lower --lr')


def read_states(path):
    """{index: state} of an optimizer states file that ``load`` accepted."""
    with open(path, 'rb') as f:
        content = pickle.load(f)
    return content[0] if isinstance(content, tuple) else content


def check_states_fit(path, param_shapes, num_devices):
    """CheckpointError unless the optimizer states file ``path`` holds, for each of the
    network's parameters (``param_shapes``: {name: shape} in the network's order) on each
    of ``num_devices`` devices, a state of its shape (MXNet's index: parameter i on device
    k is ``i * num_devices + k``), all of them finite."""
    states = read_states(path)
    if not isinstance(states, dict):
        raise CheckpointError(f'optimizer states {path} do not hold an optimizer state')
    names = list(param_shapes)
    wanted = len(names) * num_devices
    if sorted(states) != list(range(wanted)):
        raise CheckpointError(
            f'optimizer states {path} hold {len(states)} states; this network has '
            f'{len(names)} parameters on {num_devices} device(s), {wanted} states (states of '
            'another network, or of a run on another number of devices?)')
    for index in range(wanted):
        name = names[index // num_devices]
        for array in _state_arrays(states[index]):
            if not hasattr(array, 'shape') or tuple(array.shape) != param_shapes[name]:
                shape = tuple(getattr(array, 'shape', ()))
                raise CheckpointError(f'optimizer states {path} do not fit this network: the '
                                      f'state of {name} has shape {shape}, the parameter '
                                      f'{param_shapes[name]}')
    index = _non_finite_state(states)
    if index is not None:
        raise CheckpointError(f'optimizer states {path} hold NaN or infinite values (the '
                              f'state of {names[index // num_devices]}): resume from an '
                              'earlier checkpoint with a lower --lr')


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
