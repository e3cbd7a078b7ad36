"""The converters of the ONNX export (``igc_mx.onnx``): one per MXNet op, each writing
the standard ONNX ops that compute what MXNet 1.9.1 computes at inference for every
attribute value it takes, or refusing the node with an ExportError that names the op, the
node and the attribute. tests/test_onnx_ops.py checks each op and attribute in ONNX Runtime
against MXNet. The three extension ops:

    Reorder(branch_factor=g)        a channel permutation
    InterleavedGroupConv(L, M)      permutation(L) -> Conv(1x1, group=M) -> permutation(M)
    GroupConvolution(num_group=G)   Conv(group=G)

with the ops' bias (no_bias=False) as the Conv's bias, InterleavedGroupConv's residual
input (with_residual=True) as an Add and their act_type='relu' as a Relu after it
(what ``igc_mx.inference.optimize`` folds BatchNorm, residual sums and ReLU into).

``import onnx`` below is the ONNX package: imports in this package are absolute.
"""
import dataclasses

import mxnet as mx
import numpy as np
from onnx import helper, numpy_helper

from . import symbol_attrs
from .inference.fold import interleaved_rows

#: the channels-first layout of a convolution or pooling with 1, 2 or 3 spatial axes
CHANNELS_FIRST = {1: 'NCW', 2: 'NCHW', 3: 'NCDHW'}


class ExportError(ValueError):
    """The symbol, its parameters or the input shape cannot be exported."""


def channel_permutation(channels, groups):
    """``perm`` with ``Reorder(x, groups)[:, j] == x[:, perm[j]]``."""
    return np.arange(channels).reshape(groups, channels // groups).T.ravel()


# ----------------------------------------------------------------------------- the graph


@dataclasses.dataclass(frozen=True)
class Node:
    """A node of the symbol's JSON graph."""
    index: int
    op: str
    name: str
    attrs: dict
    inputs: tuple     # (node index, output index) entries

    def refuse(self, why):
        raise ExportError(f"{self.op} '{self.name}': {why}")

    def refuse_value(self, key, expected):
        """An ExportError naming the attribute, its value and what the export takes."""
        self.refuse(f'{key}={self.attrs.get(key)!r}: {expected}')


class Builder:
    """The ONNX graph being written: each converter reads its node's inputs, shapes and
    parameters here and adds the nodes that compute the node's output, a value named
    after the node."""

    def __init__(self, nodes, params, shapes, permutation):
        self.graph_nodes, self.params, self.shapes = nodes, params, shapes
        self.permutation = permutation
        self.nodes, self.initializers = [], {}
        self.values = {}       # node index -> the name of its output's value

    # inputs
    def value(self, index):
        """The value name of node ``index``'s output (an initializer when it is a
        parameter)."""
        name = self.values[index]
        if name in self.params and name not in self.initializers:
            self.constant(name, self.params[name])
        return name

    def input(self, node, k):
        """The value name of input ``k`` of ``node``."""
        return self.value(node.inputs[k][0])

    def inputs(self, node):
        return [self.input(node, k) for k in range(len(node.inputs))]

    def parameter(self, node, k):
        """The value of the parameter that input ``k`` of ``node`` reads (through the
        wrappers' identity copies), or None when it is computed."""
        source = self.graph_nodes[node.inputs[k][0]]
        while source.op in ('_copy', 'BlockGrad') and source.inputs:
            source = self.graph_nodes[source.inputs[0][0]]
        return self.params.get(source.name) if source.op == 'null' else None

    def shape(self, node, k=None):
        """The shape of input ``k`` of ``node``, or of its output."""
        return self.shapes[node.index if k is None else node.inputs[k][0]]

    # outputs
    def constant(self, name, value, dtype=np.float32):
        self.initializers[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
        return name

    def add(self, op, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def alias(self, node, k=0):
        """``node`` computes input ``k`` unchanged: its readers read that value."""
        self.values[node.index] = self.input(node, k)


def nodes_of(graph):
    """The Nodes of a symbol's JSON graph, in its order."""
    return [Node(i, n['op'], n['name'], n.get('attrs', {}),
                 tuple((e[0], e[1]) for e in n['inputs'])) for i, n in enumerate(graph['nodes'])]


# ----------------------------------------------------------------------------- converters
# Each converter(builder, node) adds the ONNX nodes computing node's output, named
# node.name, or calls builder.alias. Readers of attributes: igc_mx.symbol_attrs.


def _permute(b, x, out, shape, groups):
    """ONNX nodes computing ``out = Reorder(x, groups)`` for ``x`` of ``shape``; returns
    the value's name (``x`` itself when the permutation changes nothing)."""
    channels, spatial = shape[1], shape[2:]
    if groups in (1, channels):
        return x
    if b.permutation == 'conv' and len(spatial) == 2:
        eye = np.eye(channels, dtype=np.float32)[channel_permutation(channels, groups)]
        weight = b.constant(out + '/permutation', eye.reshape(channels, channels, 1, 1))
        return b.add('Conv', [x, weight], out, kernel_shape=[1, 1])
    size = int(np.prod(spatial, dtype=np.int64))
    split = b.constant(out + '/split_shape', [0, groups, channels // groups, size], np.int64)
    merged = b.constant(out + '/merged_shape', [0, channels, *spatial], np.int64)
    b.add('Reshape', [x, split], out + '/split')
    b.add('Transpose', [out + '/split'], out + '/transposed', perm=[0, 2, 1, 3])
    return b.add('Reshape', [out + '/transposed', merged], out)


def convert_reorder(b, node):
    b.values[node.index] = _permute(b, b.input(node, 0), node.name, b.shape(node, 0),
                                    symbol_attrs.integer(node.attrs, 'branch_factor', 1))


def _relu(node):
    """Whether an extension op's act_type asks for a ReLU after it."""
    act = symbol_attrs.text(node.attrs, 'act_type', None)
    if act not in (None, 'relu'):
        node.refuse_value('act_type', "expected 'relu' or None")
    return act == 'relu'


def _epilogue(b, produced, name, residual, relu):
    """``produced`` + ``residual`` (an input name, or None), then Relu where ``relu``;
    the last of them writes ``name``. Returns the name of the result."""
    steps = ([('Add', [residual])] if residual else []) + ([('Relu', [])] if relu else [])
    for k, (op, more) in enumerate(steps):
        produced = b.add(op, [produced, *more],
                         name if k == len(steps) - 1 else f'{name}/{op.lower()}')
    return produced


def convert_interleaved_group_conv(b, node):
    x, weight = b.input(node, 0), b.input(node, 1)
    attrs, name = node.attrs, node.name
    L = symbol_attrs.integer(attrs, 'primary_partition', 1)
    M = symbol_attrs.integer(attrs, 'secondary_partition', 1)
    with_bias = not symbol_attrs.flag(attrs, 'no_bias', True)
    with_residual = symbol_attrs.flag(attrs, 'with_residual', False)
    shape = b.shape(node, 0)
    primary = _permute(b, x, name + '/primary_order', shape, L)
    bias = []
    if with_bias:
        value = b.parameter(node, 2)
        if value is None:
            node.refuse('its bias is computed in the graph: the export takes a parameter')
        # the op adds bias[c] to output channel c; the Conv's bias goes by weight row
        bias = [b.constant(name + '/bias', value[interleaved_rows(shape[1], M)])]
    b.add('Conv', [primary, weight, *bias], name + '/secondary_conv', kernel_shape=[1, 1],
          group=M)
    relu = _relu(node)
    permuted = _permute(b, name + '/secondary_conv',
                        name + '/secondary_order' if with_residual or relu else name, shape, M)
    residual = b.input(node, 3 if with_bias else 2) if with_residual else None
    b.values[node.index] = _epilogue(b, permuted, name, residual, relu)


def _window(node, nd, kernel=None):
    """(kernel, stride, dilate, pad) of a convolution or pooling with ``nd`` spatial
    axes; the layout must be channels-first."""
    attrs = node.attrs
    layout = symbol_attrs.text(attrs, 'layout', None)
    if layout not in (None, CHANNELS_FIRST.get(nd)):
        node.refuse_value('layout', f'the export takes {CHANNELS_FIRST.get(nd)} (channels '
                                    'first)')
    kernel = symbol_attrs.ints(attrs, 'kernel', ()) if kernel is None else kernel
    window = [kernel, symbol_attrs.shape(attrs, 'stride', (1,) * nd),
              symbol_attrs.shape(attrs, 'dilate', (1,) * nd),
              symbol_attrs.shape(attrs, 'pad', (0,) * nd)]
    for key, values in zip(('kernel', 'stride', 'dilate', 'pad'), window, strict=True):
        if len(values) != nd:
            node.refuse_value(key, f'expected {nd} values, one per spatial axis')
    return [list(v) for v in window]


def _conv_attributes(b, node):
    nd = len(b.shape(node, 0)) - 2
    kernel, stride, dilate, pad = _window(node, nd)
    return dict(kernel_shape=kernel, strides=stride, dilations=dilate, pads=pad + pad,
                group=symbol_attrs.integer(node.attrs, 'num_group', 1))


def convert_convolution(b, node):
    b.add('Conv', b.inputs(node), node.name, **_conv_attributes(b, node))


def convert_group_convolution(b, node):
    relu = _relu(node)
    conv = node.name + '/conv' if relu else node.name
    b.add('Conv', b.inputs(node), conv, **_conv_attributes(b, node))
    _epilogue(b, conv, node.name, None, relu)


def convert_deconvolution(b, node):
    nd = len(b.shape(node, 0)) - 2
    if symbol_attrs.shape(node.attrs, 'target_shape', ()):
        node.refuse_value('target_shape', 'not exported; give pad and adj instead')
    adj = list(symbol_attrs.shape(node.attrs, 'adj', (0,) * nd))
    if len(adj) != nd:
        node.refuse_value('adj', f'expected {nd} values, one per spatial axis')
    b.add('ConvTranspose', b.inputs(node), node.name, output_padding=adj,
          **_conv_attributes(b, node))


def convert_batch_norm(b, node):
    attrs, shape = node.attrs, b.shape(node, 0)
    axis = symbol_attrs.integer(attrs, 'axis', 1)
    if axis % len(shape) != 1:
        node.refuse_value('axis', 'the export takes BatchNorm over the channel axis 1')
    if symbol_attrs.flag(attrs, 'fix_gamma', True):
        # MXNet computes with a gamma of 1 then, whatever the parameter holds
        gamma = b.constant(node.name + '/gamma', np.ones(shape[1]))
    else:
        gamma = b.input(node, 1)
    x, beta, mean, var = (b.input(node, k) for k in (0, 2, 3, 4))
    b.add('BatchNormalization', [x, gamma, beta, mean, var], node.name,
          epsilon=symbol_attrs.number(attrs, 'eps', 1e-3))


ACTIVATIONS = {'relu': 'Relu', 'sigmoid': 'Sigmoid', 'tanh': 'Tanh', 'softrelu': 'Softplus',
               'softsign': 'Softsign'}


def convert_activation(b, node):
    act = symbol_attrs.text(node.attrs, 'act_type', None)
    if act not in ACTIVATIONS:
        node.refuse_value('act_type', f'expected one of {", ".join(ACTIVATIONS)}')
    b.add(ACTIVATIONS[act], [b.input(node, 0)], node.name)


def _unary(onnx_op):
    def convert(b, node):
        b.add(onnx_op, [b.input(node, 0)], node.name)
    convert.__name__ = f'convert_{onnx_op.lower()}'
    return convert


# MXNet's SELU constants, which ONNX's defaults round to float32
SELU_ALPHA, SELU_GAMMA = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def convert_leaky_relu(b, node):
    attrs, name, x = node.attrs, node.name, b.input(node, 0)
    act = symbol_attrs.text(attrs, 'act_type', 'leaky')
    slope = symbol_attrs.number(attrs, 'slope', 0.25)
    if act in ('leaky', 'rrelu'):
        if act == 'rrelu':    # at inference: the mean of its random slopes' range
            slope = (symbol_attrs.number(attrs, 'lower_bound', 0.125)
                     + symbol_attrs.number(attrs, 'upper_bound', 0.334)) / 2
        b.add('LeakyRelu', [x], name, alpha=slope)
    elif act == 'elu':
        b.add('Elu', [x], name, alpha=slope)
    elif act == 'selu':
        b.add('Selu', [x], name, alpha=SELU_ALPHA, gamma=SELU_GAMMA)
    elif act == 'prelu':
        # one slope per channel (axis 1); ONNX broadcasts from the last axis
        rank = len(b.shape(node, 0))
        target = b.constant(name + '/slope_shape', [-1] + [1] * (rank - 2), np.int64)
        b.add('Reshape', [b.input(node, 1), target], name + '/slope')
        b.add('PRelu', [x, name + '/slope'], name)
    elif act == 'gelu':      # MXNet's is the erf form: x/2 (1 + erf(x/sqrt(2)))
        b.add('Div', [x, b.constant(name + '/sqrt2', np.sqrt(2.0))], name + '/scaled')
        b.add('Erf', [name + '/scaled'], name + '/erf')
        b.add('Add', [name + '/erf', b.constant(name + '/one', 1.0)], name + '/erf1')
        b.add('Mul', [x, name + '/erf1'], name + '/x_erf1')
        b.add('Mul', [name + '/x_erf1', b.constant(name + '/half', 0.5)], name)
    else:
        node.refuse_value('act_type', 'expected leaky, prelu, elu, selu, gelu or rrelu')


def convert_clip(b, node):
    low = b.constant(node.name + '/min', symbol_attrs.number(node.attrs, 'a_min', 0.0))
    high = b.constant(node.name + '/max', symbol_attrs.number(node.attrs, 'a_max', 0.0))
    b.add('Clip', [b.input(node, 0), low, high], node.name)


def convert_flatten(b, node):
    b.add('Flatten', [b.input(node, 0)], node.name, axis=1)


def convert_fully_connected(b, node):
    x, weight, *bias = b.inputs(node)
    name = node.name
    if symbol_attrs.flag(node.attrs, 'flatten', True):
        if len(b.shape(node, 0)) != 2:
            x = b.add('Flatten', [x], name + '/flat', axis=1)
        b.add('Gemm', [x, weight, *bias], name, transB=1)
        return
    # flatten=False: over the last axis, whatever comes before it
    value = b.parameter(node, 1)
    if value is not None:
        transposed = b.constant(name + '/weight_t', value.T)
    else:
        transposed = b.add('Transpose', [weight], name + '/weight_t', perm=[1, 0])
    product = b.add('MatMul', [x, transposed], name + '/matmul' if bias else name)
    if bias:
        b.add('Add', [product, bias[0]], name)


def convert_lrn(b, node):
    attrs = node.attrs
    size = symbol_attrs.integer(attrs, 'nsize', 1)
    if size % 2 == 0:
        # MXNet's reference implementation refuses even sizes; its oneDNN path centres
        # an even window differently from ONNX
        node.refuse_value('nsize', 'the export takes odd window sizes')
    b.add('LRN', [b.input(node, 0)], node.name, size=size,
          alpha=symbol_attrs.number(attrs, 'alpha', 1e-4),
          beta=symbol_attrs.number(attrs, 'beta', 0.75),
          bias=symbol_attrs.number(attrs, 'knorm', 2.0))


def _softmax(b, node, onnx_op):
    attrs = node.attrs
    if symbol_attrs.optional(symbol_attrs.flag, attrs, 'use_length', False):
        node.refuse_value('use_length', 'a length input is not exported')
    temperature = symbol_attrs.optional(symbol_attrs.number, attrs, 'temperature', 1.0)
    if not np.isfinite(temperature) or temperature == 0:
        node.refuse_value('temperature', 'expected a finite non-zero number')
    x = b.input(node, 0)
    if temperature != 1:
        x = b.add('Div', [x, b.constant(node.name + '/temperature', temperature)],
                  node.name + '/scaled')
    b.add(onnx_op, [x], node.name, axis=symbol_attrs.integer(attrs, 'axis', -1))


def convert_softmax(b, node):
    _softmax(b, node, 'Softmax')


def convert_log_softmax(b, node):
    _softmax(b, node, 'LogSoftmax')


def convert_softmax_activation(b, node):
    # mode='instance' computes over the last axis (MXNet flattens the rest into rows)
    mode = symbol_attrs.text(node.attrs, 'mode', 'instance')
    if mode == 'channel' and len(b.shape(node, 0)) < 3:
        node.refuse_value('mode', 'takes inputs of 3 or more axes (MXNet fails on fewer)')
    b.add('Softmax', [b.input(node, 0)], node.name, axis=1 if mode == 'channel' else -1)


def convert_dropout(b, node):
    p = symbol_attrs.number(node.attrs, 'p', 0.5)
    if symbol_attrs.text(node.attrs, 'mode', 'training') == 'always' and p != 0:
        node.refuse_value('mode', "drops values at inference too: the export takes "
                                  "mode='training' (or p=0)")
    b.alias(node)


def convert_cast(b, node):
    # the graph is float32 throughout (checked before): a Cast to float32 changes nothing
    b.alias(node)


def convert_identity(b, node):
    b.alias(node)


def convert_concat(b, node):
    b.add('Concat', b.inputs(node), node.name,
          axis=symbol_attrs.integer(node.attrs, 'dim', 1))


def convert_add(b, node):
    b.add('Add', b.inputs(node), node.name)


def convert_add_n(b, node):
    b.add('Sum', b.inputs(node), node.name)


SCALAR_OPS = {'_plus_scalar': ('Add', False), '_minus_scalar': ('Sub', False),
              '_rminus_scalar': ('Sub', True), '_mul_scalar': ('Mul', False),
              '_div_scalar': ('Div', False), '_rdiv_scalar': ('Div', True)}


def convert_scalar_op(b, node):
    # is_int changes nothing on float32 data: MXNet takes the scalar as a float32 then
    onnx_op, scalar_first = SCALAR_OPS[node.op]
    scalar = b.constant(node.name + '/scalar', symbol_attrs.number(node.attrs, 'scalar', 1.0))
    x = b.input(node, 0)
    b.add(onnx_op, [scalar, x] if scalar_first else [x, scalar], node.name)


def convert_slice_axis(b, node):
    attrs, name = node.attrs, node.name
    end = symbol_attrs.optional(symbol_attrs.integer, attrs, 'end', None)
    b.add('Slice', [b.input(node, 0),
                    b.constant(name + '/begin', [symbol_attrs.integer(attrs, 'begin', 0)],
                               np.int64),
                    b.constant(name + '/end', [np.iinfo(np.int64).max if end is None else end],
                               np.int64),
                    b.constant(name + '/axis', [symbol_attrs.integer(attrs, 'axis', 0)],
                               np.int64)], name)


# ----------------------------------------------------------------------------- pooling


def _window_counts(size, out, kernel, stride, begin):
    """How many input elements each of ``out`` windows along one axis covers."""
    starts = np.arange(out) * stride - begin
    return np.clip(np.minimum(starts + kernel, size) - np.maximum(starts, 0), 0, None)


def _pool_geometry(b, node, global_pool):
    """(kernel, stride, pads, element counts per output position) of a Pooling node."""
    in_shape, out_shape = b.shape(node, 0), b.shape(node)
    spatial, nd = in_shape[2:], len(in_shape) - 2
    if global_pool:    # MXNet ignores kernel, stride and pad then
        _window(node, nd, kernel=spatial)
        kernel, stride, pad = list(spatial), [1] * nd, [0] * nd
    else:
        kernel, stride, _, pad = _window(node, nd)
    # MXNet's output size (pooling_convention) with windows past the input's end: the
    # end padding that makes ONNX's floor rule give the same size
    ends = [max(0, (o - 1) * s + k - n - p)
            for n, o, k, s, p in zip(spatial, out_shape[2:], kernel, stride, pad, strict=True)]
    counts = [_window_counts(n, o, k, s, p)
              for n, o, k, s, p in zip(spatial, out_shape[2:], kernel, stride, pad, strict=True)]
    if any((c == 0).any() for c in counts):
        node.refuse(f'kernel={tuple(kernel)}, stride={tuple(stride)} and pad={tuple(pad)} on '
                    f'{tuple(spatial)} make windows that lie wholly in the padding: the export '
                    'takes windows that overlap the input')
    grid = np.ones(out_shape[2:])
    for axis, c in enumerate(counts):
        grid = grid * c.reshape([-1 if a == axis else 1 for a in range(nd)])
    return kernel, stride, pad + ends, grid


def _pool_sum(b, node, x, window, out):
    """``out`` = the sum over each window of ``x``, the padding counted as zeros. With
    padding, a depthwise Conv with a kernel of ones: ONNX Runtime 1.22's AveragePool
    divides windows over the end of an asymmetric padding by too few, and its Pad fusion
    turns a Pad before an AveragePool into that padding."""
    kernel, stride, pads, global_pool = window
    if global_pool or not any(pads):
        mean = _unpadded_mean(b, node, x, window, node.name + '/window_mean')
        size = b.constant(node.name + '/window_size', np.prod(kernel))
        return b.add('Mul', [mean, size], out)
    channels = b.shape(node, 0)[1]
    ones = b.constant(node.name + '/ones', np.ones((channels, 1, *kernel)))
    return b.add('Conv', [x, ones], out, kernel_shape=kernel, strides=stride, pads=pads,
                 group=channels)


def _unpadded_mean(b, node, x, window, out):
    kernel, stride, _, global_pool = window
    if global_pool:
        return b.add('GlobalAveragePool', [x], out)
    return b.add('AveragePool', [x], out, kernel_shape=kernel, strides=stride)


def _average_divisors(node, shape):
    """MXNet's divisor of each output position of an average pooling, relative to the
    window's count of input elements: MXNet's own Pooling of ones (its native and oneDNN
    paths differ in what they count near the borders; ones show what each divides by)."""
    attrs = {k: v for k, v in node.attrs.items() if not k.startswith('__')}
    return mx.nd.Pooling(mx.nd.ones((1, 1, *shape[2:])), **attrs).asnumpy()[0, 0]


def convert_pooling(b, node):
    attrs, name = node.attrs, node.name
    pool_type = symbol_attrs.text(attrs, 'pool_type', 'max')
    global_pool = symbol_attrs.flag(attrs, 'global_pool', False)
    if symbol_attrs.text(attrs, 'pooling_convention', 'valid') == 'same':
        node.refuse_value('pooling_convention', "expected 'valid' or 'full' (MXNet takes "
                                                "'same' for 1-D max pooling only)")
    kernel, stride, pads, counts = _pool_geometry(b, node, global_pool)
    x = b.input(node, 0)
    if pool_type == 'max':
        if global_pool:
            b.add('GlobalMaxPool', [x], name)
        else:
            b.add('MaxPool', [x], name, kernel_shape=kernel, strides=stride, pads=pads)
    elif pool_type == 'avg':
        _average_pooling(b, node, x, (kernel, stride, pads, global_pool), counts)
    elif pool_type == 'sum':
        _pool_sum(b, node, x, (kernel, stride, pads, global_pool), name)
    else:
        _lp_pooling(b, node, x, (kernel, stride, pads, global_pool))


def _average_pooling(b, node, x, window, counts):
    """MXNet's average pooling: each window's sum over its divisor, which depends on the
    output position near the borders (see ``_average_divisors``)."""
    kernel, _, pads, global_pool = window
    # 1 / divisor = (MXNet's mean of ones) / (the window's count of input elements)
    reciprocal = _average_divisors(node, b.shape(node, 0)) / counts
    if (global_pool or not any(pads)) and np.allclose(reciprocal * np.prod(kernel), 1,
                                                      rtol=0, atol=1e-6):
        _unpadded_mean(b, node, x, window, node.name)
        return
    total = _pool_sum(b, node, x, window, node.name + '/sum')
    b.add('Mul', [total, b.constant(node.name + '/divisors', reciprocal[None, None])],
          node.name)


def _lp_pooling(b, node, x, window):
    """MXNet's lp pooling: (sum x^p)^(1/p), for p = 1 and 3 with the sign kept (a sum
    of x, not |x|, and a real cube root)."""
    name = node.name
    p = symbol_attrs.optional(symbol_attrs.integer, node.attrs, 'p_value', None)
    if p not in (1, 2, 3):
        node.refuse_value('p_value', 'expected 1, 2 or 3 (what MXNet computes)')
    if p == 1:
        _pool_sum(b, node, x, window, name)
        return
    powered = b.add('Mul', [x, x], name + '/square')
    if p == 2:
        b.add('Sqrt', [_pool_sum(b, node, powered, window, name + '/sum')], name)
        return
    powered = b.add('Mul', [powered, x], name + '/cube')
    total = _pool_sum(b, node, powered, window, name + '/sum')
    b.add('Abs', [total], name + '/abs')
    b.add('Pow', [name + '/abs', b.constant(name + '/third', 1 / 3)], name + '/root')
    b.add('Sign', [total], name + '/sign')
    b.add('Mul', [name + '/root', name + '/sign'], name)


#: op -> converter. Attributes read nowhere are those that change nothing at inference
#: (momentum, use_global_stats, cudnn_*, workspace, the losses' gradient settings) or
#: are checked before (dtype).
CONVERTERS = {
    'Reorder': convert_reorder,
    'InterleavedGroupConv': convert_interleaved_group_conv,
    'GroupConvolution': convert_group_convolution,
    'Convolution': convert_convolution,
    'Deconvolution': convert_deconvolution,
    'BatchNorm': convert_batch_norm,
    'Activation': convert_activation,
    'relu': _unary('Relu'),
    'sigmoid': _unary('Sigmoid'),
    'tanh': _unary('Tanh'),
    'LeakyReLU': convert_leaky_relu,
    'clip': convert_clip,
    'Pooling': convert_pooling,
    'Flatten': convert_flatten,
    'FullyConnected': convert_fully_connected,
    'LRN': convert_lrn,
    'softmax': convert_softmax,
    'log_softmax': convert_log_softmax,
    'SoftmaxActivation': convert_softmax_activation,
    'Dropout': convert_dropout,
    'Cast': convert_cast,
    '_copy': convert_identity,
    'BlockGrad': convert_identity,
    'Concat': convert_concat,
    'elemwise_add': convert_add,
    'broadcast_add': convert_add,
    'add_n': convert_add_n,
    'slice_axis': convert_slice_axis,
    **{op: convert_scalar_op for op in SCALAR_OPS},
}


def softmax_output(b, head, scores, shape):
    """The ONNX nodes of SoftmaxOutput at inference on ``scores`` of ``shape``: a
    softmax over axis 1 (multi_output), the last axis (preserve_shape), or all values
    of each image, in the shape of the scores."""
    attrs, name = head.get('attrs', {}), head['name']
    node = Node(-1, 'SoftmaxOutput', name, attrs, ())
    if symbol_attrs.flag(attrs, 'multi_output', False):
        return b.add('Softmax', [scores], name, axis=1)
    if symbol_attrs.flag(attrs, 'preserve_shape', False) or len(shape) == 2:
        return b.add('Softmax', [scores], name, axis=-1)
    if len(shape) == 4:
        node.refuse(f'scores of shape {tuple(shape)} with preserve_shape and multi_output '
                    'False: MXNet 1.9.1 computes this softmax over the last axis on the CPU '
                    '(oneDNN) and over all values of an image elsewhere; set preserve_shape=True '
                    '(last axis), or flatten the scores first')
    b.add('Flatten', [scores], name + '/flat', axis=1)
    b.add('Softmax', [name + '/flat'], name + '/softmax', axis=1)
    back = b.constant(name + '/shape', [0, *shape[1:]], np.int64)
    return b.add('Reshape', [name + '/softmax', back], name)
