"""Symbol builders for the layers every IGC network is made of.

Layer names follow the 2017 original so that its checkpoints load:
a unit called ``name`` owns ``name_conv1``, ``name_reorder1``, ``name_conv2``,
``name_reorder2``, ``name_bn`` and ``name_relu``. ``unit_ops`` is the one choice of a
unit's ops, for these builders and for the Gluon layers (``igc_mx.gluon``).
"""
import mxnet as mx

from . import devices

# BatchNorm settings of the original: resnets use momentum 0.9, plain nets 0.99.
BN_EPS = 2e-5


def conv_bn(data, name, num_filter, kernel, stride, pad, num_group=1,
            relu=True, momentum=0.9, eps=BN_EPS, conv_name=None):
    """Convolution (no bias) -> BatchNorm -> optional ReLU.

    ``conv_name`` overrides the convolution's layer name (default ``name + '_conv'``);
    the published ResNet-18 files name their stem convolution plainly ``g0``.
    """
    data = mx.sym.Convolution(data=data, name=conv_name or name + '_conv',
                              num_filter=num_filter, kernel=kernel, stride=stride,
                              pad=pad, num_group=num_group, no_bias=True)
    data = mx.sym.BatchNorm(data=data, name=name + '_bn', fix_gamma=False,
                            momentum=momentum, eps=eps)
    if relu:
        data = mx.sym.Activation(data=data, name=name + '_relu', act_type='relu')
    return data


def igc_unit(data, name, num_filter, kernel, stride, pad, primary_partition,
             secondary_partition, relu=True, momentum=0.9, eps=BN_EPS, fused=None,
             group_conv=None, device='cpu'):
    """One interleaved group convolution unit.

    primary group conv (``primary_partition`` = L groups, spatial ``kernel``)
    -> Reorder(L) -> 1x1 group conv (``secondary_partition`` = M groups)
    -> Reorder(M) -> BatchNorm -> optional ReLU.

    In the paper's notation C = L*M, but the original CIFAR resnet_igc passes other
    values of M (kin/L), so both are free parameters here that must divide
    ``num_filter``.

    ``group_conv`` picks the primary convolution's op (see
    ``uses_group_convolution``); the layer and its ``name_conv1_weight`` are the same
    either way.

    ``fused=True`` computes reorder1 -> conv2 -> reorder2 as one
    ``InterleavedGroupConv`` node called ``name_conv2``, with the same weight
    ``name_conv2_weight``: parameters and checkpoints are those of the unfused
    graph (``fused=False``, the original's node list).

    ``fused`` and ``group_conv`` left as None take the choice for ``device`` ('cpu'
    or 'gpu'; see ``igc_mx.devices``): the fast ops on the CPU, the original ops on
    the GPU except where a GPU measurement says otherwise.
    """
    fused, group_convolution = unit_ops(name, num_filter, primary_partition,
                                        secondary_partition, fused, group_conv, device)
    conv = mx.sym.GroupConvolution if group_convolution else mx.sym.Convolution
    data = conv(data=data, name=name + '_conv1', num_filter=num_filter, kernel=kernel,
                stride=stride, pad=pad, num_group=primary_partition, no_bias=True)
    if fused:
        data = mx.sym.InterleavedGroupConv(data, mx.sym.Variable(name + '_conv2_weight'),
                                           name=name + '_conv2',
                                           primary_partition=primary_partition,
                                           secondary_partition=secondary_partition)
    else:
        data = mx.sym.Reorder(data=data, name=name + '_reorder1',
                              branch_factor=primary_partition)
        data = mx.sym.Convolution(data=data, name=name + '_conv2', num_filter=num_filter,
                                  kernel=(1, 1), stride=(1, 1), pad=(0, 0),
                                  num_group=secondary_partition, no_bias=True)
        data = mx.sym.Reorder(data=data, name=name + '_reorder2',
                              branch_factor=secondary_partition)
    data = mx.sym.BatchNorm(data=data, name=name + '_bn', fix_gamma=False,
                            momentum=momentum, eps=eps)
    if relu:
        data = mx.sym.Activation(data=data, name=name + '_relu', act_type='relu')
    return data


# Filters per group up to which group_conv='auto' uses GroupConvolution. The rule:
# the largest group width at which whole networks train faster with it than with
# oneDNN's Convolution, measured on networks (bench/bench_auto_limit.py), not on
# the op alone, since in a network oneDNN also pays for layout conversions. The
# measurements: docs/group_conv.md, section "group_conv='auto'".
AUTO_GROUP_CONV_MAX_PER_GROUP = 16


def uses_group_convolution(group_conv, per_group):
    """Whether an IGC primary convolution with ``per_group`` filters per group runs as
    GroupConvolution: ``group_conv`` False -> no (MXNet's Convolution, the original),
    True -> yes, 'auto' -> where it measured faster (per_group <=
    AUTO_GROUP_CONV_MAX_PER_GROUP). Both ops take the same arguments and own the same
    ``<name>_weight``."""
    if group_conv == 'auto':
        group_conv = per_group <= AUTO_GROUP_CONV_MAX_PER_GROUP
    if not isinstance(group_conv, bool):
        raise ValueError(f"group_conv={group_conv!r}: expected True, False or 'auto'")
    return group_conv


def primary_conv_op(group_conv, per_group):
    """The op of an IGC primary convolution with ``per_group`` filters per group
    (``uses_group_convolution``): mx.sym.GroupConvolution or mx.sym.Convolution."""
    return (mx.sym.GroupConvolution if uses_group_convolution(group_conv, per_group)
            else mx.sym.Convolution)


def unit_ops(name, num_filter, primary_partition, secondary_partition, fused, group_conv,
             device):
    """(fused, GroupConvolution for the primary convolution) of the IGC unit ``name``, with
    ``fused`` and ``group_conv`` as ``igc_unit`` takes them (None: ``device``'s choice).
    ValueError, naming the unit, for partitions that do not divide ``num_filter`` and
    for options that are neither a choice nor None. The symbol and the Gluon units
    both decide here."""
    _check_partition(name, 'primary_partition', primary_partition, num_filter)
    _check_partition(name, 'secondary_partition', secondary_partition, num_filter)
    if fused is None:
        fused = devices.fused(device, num_filter, primary_partition, secondary_partition)
    if not isinstance(fused, bool):
        raise ValueError(f'{name}: fused={fused!r}: expected True, False or None (the '
                         "device's choice)")
    if group_conv is None:
        group_conv = devices.group_conv(device, num_filter, primary_partition)
    return fused, uses_group_convolution(group_conv, num_filter // primary_partition)


def _check_partition(unit, what, value, channels):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"IGC unit '{unit}': {what}={value!r} must be a positive integer")
    if channels % value:
        raise ValueError(f"IGC unit '{unit}': {what}={value} does not divide "
                         f"num_filter={channels}")
