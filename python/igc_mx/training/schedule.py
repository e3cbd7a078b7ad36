"""Step learning-rate schedule, in epochs on the command line, in updates inside.

The optimizer counts updates; a step at epoch ``s`` becomes update
``round(s * epoch_size)``, and ``MultiFactorScheduler`` multiplies the lr by
``factor`` for every update number strictly greater than a step. So epoch ``e``
(counted from 0) runs at ``lr * factor ** #{s <= e}``, the rule of the original.

Resuming at epoch ``E`` starts the optimizer at ``num_update = E * epoch_size``;
the scheduler then catches up on every step already passed, so the lr equals
what an uninterrupted run would use.
"""
import logging
import math

import mxnet as mx


def epoch_size(num_examples, batch_size, num_workers=1, max_batches=None):
    """Updates per epoch on each worker (what MXNet's ``fit.get_epoch_size`` computes)."""
    n = int(math.ceil(int(num_examples / num_workers) / batch_size))
    if max_batches:
        n = min(n, max_batches)
    return max(1, n)


def steps_in_updates(lr_steps, updates_per_epoch):
    """Epoch steps -> strictly increasing update counts >= 1 (duplicates dropped)."""
    out = []
    for s in sorted(lr_steps):
        u = int(round(s * updates_per_epoch))
        if u >= 1 and (not out or u > out[-1]):
            out.append(u)
    return out


def lr_at_epoch(base_lr, factor, lr_steps, epoch):
    """The lr used during ``epoch`` (0-based), by the rule above."""
    return base_lr * factor ** sum(1 for s in lr_steps if s <= epoch)


def lr_at_update(base_lr, factor, steps, num_update):
    """The lr used by update number ``num_update`` (1-based), steps in updates."""
    return base_lr * factor ** sum(1 for s in steps if num_update > s)


def make_scheduler(base_lr, factor, lr_steps, updates_per_epoch):
    """An ``mx.lr_scheduler.MultiFactorScheduler`` for the epoch steps, or None."""
    steps = steps_in_updates(lr_steps, updates_per_epoch)
    if not steps or factor >= 1:
        return None
    return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=factor, base_lr=base_lr)


def describe(base_lr, factor, lr_steps, updates_per_epoch, begin_epoch=0):
    steps = steps_in_updates(lr_steps, updates_per_epoch)
    lr = lr_at_update(base_lr, factor, steps, begin_epoch * updates_per_epoch + 1)
    logging.info('training strategy: lr=%g (at epoch %d), factor=%g, steps(epochs)=%s, '
                 'steps(updates)=%s, updates/epoch=%d', lr, begin_epoch, factor,
                 [float(f'{s:g}') for s in lr_steps], steps, updates_per_epoch)
    return lr
