"""Stop a run whose loss is no longer a number.

Once the weights overflow, every later batch trains on NaN, and the run would go on to its
last epoch writing useless checkpoints. The cross-entropy metric, which ``Module.fit``
updates from the outputs after every batch anyway, is NaN from the first batch whose
outputs are not finite; checking it costs one float comparison per batch.
"""
import math

import mxnet as mx


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def _cross_entropy(metric):
    if isinstance(metric, mx.metric.CrossEntropy):
        return metric
    for child in getattr(metric, 'metrics', ()):
        found = _cross_entropy(child)
        if found is not None:
            return found
    return None


class StopOnNonFiniteLoss:
    """``batch_end_callback``: TrainingDiverged naming the epoch, batch and update when
    the epoch's cross-entropy is not finite."""

    def __init__(self, lr, updates_per_epoch):
        self.lr, self.updates_per_epoch = lr, updates_per_epoch

    def __call__(self, param):
        metric = _cross_entropy(param.eval_metric)
        if metric is None or math.isfinite(metric.global_sum_metric):
            return
        update = param.epoch * self.updates_per_epoch + param.nbatch + 1
        raise TrainingDiverged(
            f'the training loss is {metric.global_sum_metric} at epoch {param.epoch}, batch '
            f'{param.nbatch + 1} (update {update}): the weights are no longer finite, so the run '
            'stops here and saves nothing of this epoch; resume from the last checkpoint with '
            f'a lower --lr (the initial lr is {self.lr:g})')
