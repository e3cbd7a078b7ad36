"""The original optimizer and initializer, on MXNet 1.9.1's API.

The 2017 ``Nesterov`` overrode ``set_wd_mult`` and read ``self.sym``, an
attribute MXNet removed in 1.0 (it became ``sym_info = (attr_dict,
arg_names)``), so constructing it raised ``AttributeError`` before training.
This version reads only ``idx2name`` and ``sym_info``.
"""
import copyreg

import mxnet as mx

# Parameter-name endings that get weight decay ("same as torch" in the original).
DECAYED_SUFFIXES = ('_weight', '_bias', '_gamma', '_beta')


def wd_mult_for(names, sym_info=()):
    """Weight-decay multipliers: 0 for names not ending in DECAYED_SUFFIXES,
    then any ``__wd_mult__`` attribute on a symbol variable overrides."""
    mult = {n: 0.0 for n in names if not n.endswith(DECAYED_SUFFIXES)}
    if sym_info:
        attr, arg_names = sym_info
        for name in arg_names:
            if name in attr and '__wd_mult__' in attr[name]:
                mult[name] = float(attr[name]['__wd_mult__'])
    return mult


@mx.optimizer.Optimizer.register
class Nesterov(mx.optimizer.NAG):
    """NAG whose weight decay applies to ``*_weight``, ``*_bias``, ``*_gamma``
    and ``*_beta`` (MXNet's default decays only ``_weight`` and ``_gamma``).

    Registered as ``'nesterov'``; create it by name through ``Module`` so that
    ``param_idx2name`` and ``sym`` are passed to the constructor.
    """

    def set_wd_mult(self, args_wd_mult):
        self.wd_mult = wd_mult_for(self.idx2name.values(), self.sym_info)
        self.wd_mult.update(args_wd_mult)

    def _update_impl(self, index, weight, grad, state, multi_precision=False):
        # MXNet 1.9.1's nag_mom_update, run in place (out=weight), reads the
        # already-updated weight for the momentum's decay term, and its
        # mp_nag_mom_update differs likewise. Writing to a separate array gives the
        # textbook update the 2017 MXNet computed:
        #   v = momentum * v + g';  w -= lr * (g' + momentum * v),  g' = rescale*g + wd*w
        # With multi_precision (float16 weights) it runs on the float32 master copy,
        # and the float16 weight is the master rounded.
        momentum = state[0] if multi_precision else state
        if momentum is None:
            return super()._update_impl(index, weight, grad, state, multi_precision)
        self._update_count(index)
        kwargs = {'rescale_grad': self.rescale_grad, 'momentum': self.momentum}
        if self.clip_gradient:
            kwargs['clip_gradient'] = self.clip_gradient
        target = state[1] if multi_precision else weight
        if multi_precision:
            grad = grad.astype('float32')
        new = mx.nd.nag_mom_update(target, grad, momentum, lr=self._get_lr(index),
                                   wd=self._get_wd(index), **kwargs)
        new.copyto(target)
        if multi_precision:
            mx.nd.cast(target, dtype=weight.dtype, out=weight)
        return None

    def __reduce__(self):
        # fit() keeps updates on the workers (MXNET_UPDATE_ON_KVSTORE=0). Should
        # a kvstore still pickle the optimizer to its servers (which run inside
        # ``import mxnet`` and cannot import this package), they receive a plain
        # NAG with the same state: the same decay rule, MXNet's in-place kernel.
        return (copyreg._reconstructor, (mx.optimizer.NAG, object, None), self.__dict__.copy())


def initializer():
    """Convolutions: Xavier(gaussian, 'in', 2); names matching ``.*fc.*``:
    Xavier(uniform, 'in', 1); bias/beta 0, gamma 1 (MXNet's defaults by name),
    BatchNorm moving_mean 0 and moving_var 1."""
    return mx.init.Mixed(
        ['.*fc.*', '.*'],
        [mx.init.Xavier(rnd_type='uniform', factor_type='in', magnitude=1),
         mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)])
