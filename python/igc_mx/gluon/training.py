"""``gluon.Trainer`` with the training recipe's optimizer.

``Module`` training (``igc_mx.training.fit``) uses ``Nesterov`` (``'nesterov'``) with
weight decay on the parameters whose names end in ``optim.DECAYED_SUFFIXES``, and float32
master weights for float16 networks. A Gluon ``Trainer`` takes a parameter's weight decay
from its ``wd_mult``; ``trainer`` sets it by the same name rule.
"""
import numpy as np
from mxnet import gluon

from ..training import optim


def trainer(params, learning_rate, momentum, wd, lr_scheduler=None, multi_precision=None,
            kvstore='device'):
    """A ``gluon.Trainer`` of ``params`` (a ParameterDict, or a Block whose parameters
    to train) running the recipe's ``Nesterov``: ``wd_mult`` 0 for the parameters that
    the recipe does not decay, others unchanged. ``multi_precision`` (float32 master
    weights and momentum for float16 parameters) is on by default when a parameter is
    float16."""
    if isinstance(params, gluon.Block):
        params = params.collect_params()
    for name in optim.wd_mult_for(params.keys()):
        params[name].wd_mult = 0.0
    if multi_precision is None:
        multi_precision = any(np.dtype(p.dtype) == np.float16 for p in params.values())
    return gluon.Trainer(params, 'nesterov',
                         {'learning_rate': learning_rate, 'momentum': momentum, 'wd': wd,
                          'lr_scheduler': lr_scheduler, 'multi_precision': multi_precision},
                         kvstore=kvstore)
