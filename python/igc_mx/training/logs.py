"""Log file and console output in the original's format.

Per-batch lines (every ``--log-iters`` batches)::

    Epoch[0] Batch [50]\tSpeed: 1234\tloss: 2.1034(2.2510)\ttop1: 21.8750(17.4632)

the value over the last window, then in parentheses the running average since
the start of the epoch. Per-epoch lines are those of ``Module.fit``:
``Epoch[N] Train-accuracy=…``, ``Epoch[N] Time cost=…``,
``Epoch[N] Validation-accuracy=…``.

A log line that cannot be written (a full disk) stops the run: logging's default prints a
traceback to the console for every line and goes on, so a run would end with status 0 and
a log that stops early.
"""
import logging
import os
import sys
import time

import numpy as np

from ..atomic import check_target

HEAD = '%(asctime)-15s %(message)s'


class LogWriteError(OSError):
    """A line could not be written to the log file."""


class _FileHandler(logging.FileHandler):
    """A FileHandler whose write failures raise LogWriteError, naming the file, in the code
    that logged."""

    def handleError(self, record):
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise LogWriteError(err.errno, err.strerror, self.baseFilename) from None
        super().handleError(record)


def setup(log_file, rank=0, num_workers=1, inputs=()):
    """Log to ``log_file`` (appending) and to the console. ``log_file`` must be a regular
    file or a new path, and none of ``inputs`` (``igc_mx.atomic.check_target``)."""
    head = HEAD if num_workers == 1 else '%(asctime)-15s Node[' + str(rank) + '] %(message)s'
    logger = logging.getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(head)
    if log_file:
        check_target(log_file, inputs, '--log-file')
    handlers = [logging.StreamHandler()]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(_FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def count_params(symbol, data_shape):
    """Number of learnable parameters (arguments other than data and labels)."""
    arg_shapes, _, _ = symbol.infer_shape(data=data_shape)
    return int(sum(np.prod(shape)
                   for name, shape in zip(symbol.list_arguments(), arg_shapes, strict=True)
                   if name != 'data' and not name.endswith('label')))


_FIELDS = (('cross-entropy', 'loss', 1.0), ('accuracy', 'top1', 100.0),
           ('top_k_accuracy_5', 'top5', 100.0))


class BatchLogger:
    """``batch_end_callback``: speed, loss and top-1 (top-5) every ``frequent`` batches."""

    def __init__(self, batch_size, frequent=50):
        self.batch_size = batch_size
        self.frequent = frequent
        self.tic = None
        self.last_batch = 0

    def __call__(self, param):
        count = param.nbatch + 1
        if param.nbatch == 0 or self.tic is None:
            self.tic, self.last_batch = time.time(), 1  # batch 0 is already done
        if count % self.frequent:
            return
        done = count - self.last_batch
        speed = done * self.batch_size / (time.time() - self.tic) if done > 0 else 0.0
        line = f'Epoch[{param.epoch}] Batch [{count}]\tSpeed: {speed:.0f}'
        metric = param.eval_metric
        if metric is not None:
            local = dict(metric.get_name_value())
            running = dict(metric.get_global_name_value())
            for name, label, scale in _FIELDS:
                if name in local:
                    line += f'\t{label}: {scale * local[name]:.4f}({scale * running[name]:.4f})'
            metric.reset_local()
        logging.info(line)
        self.tic, self.last_batch = time.time(), count
