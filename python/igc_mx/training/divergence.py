"""Stop a run whose loss or parameters are no longer numbers.

Once the weights overflow, every later batch trains on NaN, and the run would go on to its
last epoch writing useless checkpoints. Three checks, each on numbers that exist anyway:

- the training loss after every batch: the cross-entropy metric that ``Module.fit``
  updates from the outputs, NaN from the first batch whose outputs are not finite;
- the parameters at the end of every epoch (the copies ``Module.fit`` takes for the
  checkpoint): the training loss alone misses parameters that training does not read,
  such as BatchNorm's moving mean and variance, which an exploding lr can overflow while
  the batch statistics keep the training outputs finite (their cross-entropy then stays
  at the metric's clipped -log(1e-12), about 27.6);
- the validation loss, computed with those statistics.

A non-finite training loss stops the run at its batch, non-finite parameters or validation
loss at the end of the epoch, before its checkpoint is written (``checkpoint.Saver``).
"""
import math

import mxnet as mx
import numpy as np


class TrainingDiverged(RuntimeError):
    """The training loss, the validation loss or a parameter became NaN or infinite."""


def cross_entropy(metric):
    """The CrossEntropy metric in ``metric`` (possibly composite), or None."""
    if isinstance(metric, mx.metric.CrossEntropy):
        return metric
    for child in getattr(metric, 'metrics', ()):
        found = cross_entropy(child)
        if found is not None:
            return found
    return None


def lower_lr_hint(lr):
    return f'resume from the last checkpoint with a lower --lr (the initial lr is {lr:g})'


def first_non_finite(arrays):
    """The first name in ``arrays`` ({name: NDArray or numpy array}, in sorted order) whose
    values are not all finite, or None."""
    for name in sorted(arrays):
        value = arrays[name]
        value = value.asnumpy() if isinstance(value, mx.nd.NDArray) else np.asarray(value)
        if not np.isfinite(value).all():
            return name
    return None


class StopOnNonFiniteLoss:
    """``batch_end_callback``: TrainingDiverged naming the epoch, batch and update when
    the epoch's cross-entropy is not finite."""

    def __init__(self, lr, updates_per_epoch):
        self.lr, self.updates_per_epoch = lr, updates_per_epoch

    def __call__(self, param):
        metric = cross_entropy(param.eval_metric)
        if metric is None or math.isfinite(metric.global_sum_metric):
            return
        update = param.epoch * self.updates_per_epoch + param.nbatch + 1
        raise TrainingDiverged(
            f'the training loss is {metric.global_sum_metric} at epoch {param.epoch}, batch '
            f'{param.nbatch + 1} (update {update}): the weights are no longer finite, so the run '
            f'stops here and saves nothing of this epoch; {lower_lr_hint(self.lr)}')


def check_parameters(epoch, arg_params, aux_params, lr):
    """TrainingDiverged naming the first parameter or auxiliary state that is not finite at
    the end of ``epoch``."""
    name = first_non_finite(arg_params)
    why = ''
    if name is None:
        name = first_non_finite(aux_params)
        why = (' (training normalizes with the batch statistics, so the training loss does '
               'not show it)')
    if name is None:
        return
    raise TrainingDiverged(
        f'{name} is no longer finite at the end of epoch {epoch}{why}, so the run stops here '
        f'and saves nothing of this epoch; {lower_lr_hint(lr)}')


def check_validation(epoch, metric, lr):
    """TrainingDiverged when the validation cross-entropy of ``epoch`` is not finite."""
    found = cross_entropy(metric)
    if found is None:
        return
    value = found.get()[1]
    if math.isfinite(value):
        return
    raise TrainingDiverged(
        f'the validation loss is {value} at the end of epoch {epoch}: the network computes '
        f'NaN or infinite outputs at inference, so the run stops here and saves nothing of '
        f'this epoch; {lower_lr_hint(lr)}')
