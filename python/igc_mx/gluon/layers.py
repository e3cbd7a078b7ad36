"""The layers of IGC networks as Gluon HybridBlocks.

Each block computes what the symbol builder of ``igc_mx.blocks`` of the same name
computes, with the same parameters: a block whose prefix is ``'<name>_'`` (Gluon's
convention; its ``name`` is ``'<name>'``) owns the parameters that the builder gives a
layer called ``'<name>'``, and names its symbol nodes as the builder does. So
``IGCUnit(..., prefix='g1_b1_')`` owns ``g1_b1_conv1_weight``, ``g1_b1_conv2_weight``,
``g1_b1_bn_gamma``, ``g1_b1_bn_beta``, ``g1_b1_bn_moving_mean`` and
``g1_b1_bn_moving_var``, like ``igc_mx.igc_unit(data, 'g1_b1', ...)``.

``hybrid_forward`` calls ``F.GroupConvolution``, ``F.InterleavedGroupConv`` and
``F.Reorder``, so a block runs imperatively (F = mx.nd) and hybridized (F = mx.sym).
Both paths go through the op wrappers of ``igc_mx._ops``: a parameter reaches an
extension op through an ``identity``, which keeps ``grad_req='add'`` right.
"""
import contextlib

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from .. import blocks


@contextlib.contextmanager
def exact_names():
    """Symbol nodes called exactly what the layer says. Inside a block's forward Gluon
    puts the block's prefix before every node name, also before the
    ``<parameter>_identity`` that the op wrappers name after a parameter; the layers
    give full names instead."""
    with mx.name.NameManager():
        yield


def _pair(what, value):
    """(v, v) from an int, or a pair as given."""
    pair = (value, value) if isinstance(value, int) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        raise ValueError(f'{what}={value!r}: expected an int or a pair of ints')
    return tuple(pair)


def _check_groups(layer, what, value, channels, of):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"layer '{layer}': {what}={value!r} must be a positive integer")
    if channels and channels % value:
        raise ValueError(f"layer '{layer}': {what}={value} does not divide {of}={channels}")


class GroupConv(HybridBlock):
    """Convolution without bias in ``num_group`` groups; weight ``'<name>_weight'`` of
    shape (num_filter, in_channels / num_group, *kernel).

    ``group_conv`` picks the op as for an IGC primary convolution
    (``blocks.uses_group_convolution``): False, MXNet's ``Convolution``; True,
    ``GroupConvolution``; 'auto', ``GroupConvolution`` for at most
    ``blocks.AUTO_GROUP_CONV_MAX_PER_GROUP`` filters per group. ``in_channels=0`` leaves
    the input channels to the first call (Gluon's deferred initialization)."""

    def __init__(self, num_filter, kernel, stride=1, pad=0, num_group=1, group_conv=False,
                 in_channels=0, **kwargs):
        super().__init__(**kwargs)
        kernel = _pair('kernel', kernel)
        _check_groups(self.name, 'num_group', num_group, num_filter, 'num_filter')
        _check_groups(self.name, 'num_group', num_group, in_channels, 'in_channels')
        self._op = ('GroupConvolution'
                    if blocks.uses_group_convolution(group_conv, num_filter // num_group)
                    else 'Convolution')
        self._attrs = {'num_filter': num_filter, 'kernel': kernel,
                       'stride': _pair('stride', stride), 'pad': _pair('pad', pad),
                       'num_group': num_group, 'no_bias': True}
        # Without in_channels the weight has no shape until the first call: the
        # extension ops infer a weight shape only when none of it is given, and refuse
        # Gluon's partial (num_filter, 0, kh, kw).
        shape = (num_filter, in_channels // num_group) + kernel if in_channels else None
        self.weight = self.params.get('weight', shape=shape, allow_deferred_init=True)

    def hybrid_forward(self, F, x, weight):
        with exact_names():
            return getattr(F, self._op)(x, weight, name=self.name, **self._attrs)


class BatchNorm(HybridBlock):
    """MXNet's BatchNorm as the symbol builders make it (``fix_gamma=False``), with
    the parameters ``'<name>_gamma'``, ``'<name>_beta'`` and the statistics
    ``'<name>_moving_mean'``, ``'<name>_moving_var'`` (Gluon's own BatchNorm calls them
    running_mean/running_var). Parameters and statistics stay float32 in a float16
    network, as in MXNet's BatchNorm."""

    def __init__(self, momentum=0.9, eps=blocks.BN_EPS, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._attrs = {'fix_gamma': False, 'momentum': momentum, 'eps': eps}
        shape = (in_channels,)
        self.gamma = self.params.get('gamma', shape=shape, init='ones',
                                     allow_deferred_init=True)
        self.beta = self.params.get('beta', shape=shape, init='zeros',
                                    allow_deferred_init=True)
        self.moving_mean = self.params.get('moving_mean', shape=shape, init='zeros',
                                           grad_req='null', differentiable=False,
                                           allow_deferred_init=True)
        self.moving_var = self.params.get('moving_var', shape=shape, init='ones',
                                          grad_req='null', differentiable=False,
                                          allow_deferred_init=True)

    def cast(self, dtype):
        if np.dtype(dtype).name == 'float16':
            dtype = 'float32'
        super().cast(dtype)

    def hybrid_forward(self, F, x, gamma, beta, moving_mean, moving_var):
        with exact_names():
            return F.BatchNorm(x, gamma, beta, moving_mean, moving_var, name=self.name,
                               **self._attrs)


class Reorder(HybridBlock):
    """The channel permutation of IGC (``mx.nd.Reorder``): output channel ``j*g + i``
    is input channel ``i*(C/g) + j`` for ``branch_factor`` g."""

    def __init__(self, branch_factor, **kwargs):
        super().__init__(**kwargs)
        _check_groups(self.name, 'branch_factor', branch_factor, 0, '')
        self._branch_factor = branch_factor

    def hybrid_forward(self, F, x):
        with exact_names():
            return F.Reorder(x, branch_factor=self._branch_factor, name=self.name)


class ConvBN(HybridBlock):
    """``blocks.conv_bn``: convolution ``'<name>_conv'`` (no bias) -> BatchNorm
    ``'<name>_bn'`` -> optional ReLU ``'<name>_relu'``. ``bare_conv=True`` calls the
    convolution ``'<name>'`` (weight ``'<name>_weight'``), as the published ResNet-18
    files do."""

    def __init__(self, num_filter, kernel, stride=1, pad=0, num_group=1, relu=True,
                 momentum=0.9, eps=blocks.BN_EPS, bare_conv=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._relu = relu
        with self.name_scope():
            self.conv = GroupConv(num_filter, kernel, stride, pad, num_group,
                                  in_channels=in_channels, prefix='' if bare_conv else 'conv_')
            self.bn = BatchNorm(momentum, eps, in_channels=num_filter, prefix='bn_')

    def hybrid_forward(self, F, x):
        x = self.bn(self.conv(x))
        if self._relu:
            with exact_names():
                x = F.Activation(x, act_type='relu', name=self.name + '_relu')
        return x


class IGCUnit(HybridBlock):
    """One interleaved group convolution unit, as ``blocks.igc_unit``: primary group
    convolution ``'<name>_conv1'`` (``primary_partition`` = L groups, spatial
    ``kernel``) -> Reorder(L) -> 1x1 group convolution ``'<name>_conv2'``
    (``secondary_partition`` = M groups) -> Reorder(M) -> BatchNorm ``'<name>_bn'`` ->
    optional ReLU.

    ``fused``, ``group_conv`` and ``device`` choose the ops as for the symbol
    (``blocks.unit_ops``): ``fused=True`` computes Reorder -> conv2 -> Reorder as one
    ``InterleavedGroupConv`` node with the same weight ``'<name>_conv2_weight'``;
    ``group_conv`` picks the primary convolution's op (``GroupConv``). The parameters
    are the same whatever the choice. Both partitions must divide ``num_filter``, and L
    the input channels; ``in_channels=0`` leaves them to the first call."""

    def __init__(self, num_filter, kernel, stride, pad, primary_partition,
                 secondary_partition, relu=True, momentum=0.9, eps=blocks.BN_EPS, fused=None,
                 group_conv=None, device='cpu', in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._fused, group_convolution = blocks.unit_ops(
            self.name, num_filter, primary_partition, secondary_partition, fused, group_conv,
            device)
        self._partitions = (primary_partition, secondary_partition)
        self._num_filter = num_filter
        self._relu = relu
        with self.name_scope():
            self.conv1 = GroupConv(num_filter, kernel, stride, pad, primary_partition,
                                   group_convolution, in_channels, prefix='conv1_')
            self.conv2_weight = self.params.get(
                'conv2_weight', shape=(num_filter, num_filter // secondary_partition, 1, 1))
            self.bn = BatchNorm(momentum, eps, in_channels=num_filter, prefix='bn_')

    def hybrid_forward(self, F, x, conv2_weight):
        L, M = self._partitions
        x = self.conv1(x)
        with exact_names():
            if self._fused:
                x = F.InterleavedGroupConv(x, conv2_weight, name=self.name + '_conv2',
                                           primary_partition=L, secondary_partition=M)
            else:
                x = F.Reorder(x, branch_factor=L, name=self.name + '_reorder1')
                x = F.Convolution(x, conv2_weight, name=self.name + '_conv2',
                                  num_filter=self._num_filter, kernel=(1, 1), stride=(1, 1),
                                  pad=(0, 0), num_group=M, no_bias=True)
                x = F.Reorder(x, branch_factor=M, name=self.name + '_reorder2')
        x = self.bn(x)
        if self._relu:
            with exact_names():
                x = F.Activation(x, act_type='relu', name=self.name + '_relu')
        return x


class FullyConnected(HybridBlock):
    """MXNet's FullyConnected as the symbol builders make it: weight ``'<name>_weight'``
    (num_hidden, in_units), bias ``'<name>_bias'``."""

    def __init__(self, num_hidden, in_units=0, **kwargs):
        super().__init__(**kwargs)
        self._num_hidden = num_hidden
        self.weight = self.params.get('weight', shape=(num_hidden, in_units),
                                      allow_deferred_init=True)
        self.bias = self.params.get('bias', shape=(num_hidden,), init='zeros',
                                    allow_deferred_init=True)

    def hybrid_forward(self, F, x, weight, bias):
        with exact_names():
            return F.FullyConnected(x, weight, bias, num_hidden=self._num_hidden,
                                    name=self.name)


class NamedOp(HybridBlock):
    """A parameterless MXNet op (``op`` with ``attrs``), its node called ``name``."""

    def __init__(self, op, name, **attrs):
        super().__init__(prefix=name + '_')
        self._op, self._attrs = op, attrs

    def hybrid_forward(self, F, x):
        with exact_names():
            return getattr(F, self._op)(x, name=self.name, **self._attrs)
