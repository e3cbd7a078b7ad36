"""Export MXNet symbols with the IGC operators to ONNX (standard ONNX ops only).

MXNet 1.9.1's exporter (``mx.onnx.export_model``) knows MXNet's own ops; this module
registers converters for the three extension ops:

    Reorder(branch_factor=g)        a channel permutation (see ``PERMUTATIONS``)
    InterleavedGroupConv(L, M)      permutation(L) -> Conv(1x1, group=M) -> permutation(M)
    GroupConvolution(num_group=G)   Conv(group=G)

with the ops' bias (no_bias=False) as the Conv's bias, InterleavedGroupConv's residual
input (with_residual=True) as an Add and their act_type='relu' as a Relu after it
(what ``igc_mx.inference.optimize`` folds BatchNorm, residual sums and ReLU into),

and post-processes the model: parameters are initializers only (MXNet's exporter also
lists them as graph inputs, which makes ONNX Runtime treat them as overridable and skip
constant folding), Identity nodes (such as the ``<weight>_identity`` copies that the op
wrappers put between a parameter and an extension op, ``igc_mx._ops``) are dropped,
BatchNorm layers with ``fix_gamma=True`` get the gamma of 1 that MXNet uses, a
SoftmaxOutput head becomes a Softmax (or is left out: ``logits``), and the batch
dimension of the input and output is dynamic (``'batch'``).

ONNX has no channel-shuffle op. A permutation of the channels of an (N, C, H, W) tensor
into g groups is exported as ``Reshape(N, g, C/g, H*W) -> Transpose(0, 2, 1, 3) ->
Reshape(N, C, H, W)`` with the shapes written out ('transpose', the default), or as a
1x1 convolution with a C x C permutation matrix ('conv'). docs/after_training.md has
the measurements behind the default.

``import onnx`` below is the ONNX package: imports in this package are absolute.
"""
import contextlib
import json

import mxnet as mx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import symbol_attrs
from ._library import ensure_loaded
from .atomic import atomic_path
from .inference.fold import interleaved_rows
from .model_files import ModelFileError, check_params, infer_shape

#: how a channel permutation is exported
PERMUTATIONS = ('transpose', 'conv')
DEFAULT_PERMUTATION = 'transpose'
EXTENSION_OPS = ('Reorder', 'InterleavedGroupConv', 'GroupConvolution')
BATCH_DIM = 'batch'


class ExportError(ValueError):
    """The symbol, its parameters or the input shape cannot be exported."""


# The exporter calls converters with the node and its own bookkeeping only; the shapes
# inferred for the export's input shape and the permutation choice reach them here.
_context = {}


@contextlib.contextmanager
def _export_context(**values):
    _context.update(values)
    try:
        yield
    finally:
        _context.clear()


def channel_permutation(channels, groups):
    """``perm`` with ``Reorder(x, groups)[:, j] == x[:, perm[j]]``."""
    return np.arange(channels).reshape(groups, channels // groups).T.ravel()


# ----------------------------------------------------------------------------- converters


def _input_names(node, kwargs):
    lookup = kwargs['outputs_lookup']
    return [lookup[i][o].name for i, o, *_ in node['inputs']]


def _input_shape(node, position=0):
    return _context['shapes'][tuple(node['inputs'][position][:2])]


def _int64(kwargs, name, values):
    kwargs['initializer'].append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def _permute(x, out, shape, groups, kwargs):
    """ONNX nodes computing ``out = Reorder(x, groups)`` for ``x`` of ``shape``."""
    channels, spatial = shape[1], shape[2:]
    if groups == 1 or groups == channels:
        return [helper.make_node('Identity', [x], [out], name=out)]
    if _context['permutation'] == 'conv' and len(spatial) == 2:
        eye = np.eye(channels, dtype=np.float32)[channel_permutation(channels, groups)]
        weight = out + '/permutation'
        kwargs['initializer'].append(numpy_helper.from_array(
            eye.reshape(channels, channels, 1, 1), weight))
        return [helper.make_node('Conv', [x, weight], [out], name=out, kernel_shape=[1, 1])]
    size = int(np.prod(spatial, dtype=np.int64))
    split = _int64(kwargs, out + '/split_shape', [0, groups, channels // groups, size])
    merged = _int64(kwargs, out + '/merged_shape', [0, channels, *spatial])
    return [helper.make_node('Reshape', [x, split], [out + '/split'], name=out + '/split'),
            helper.make_node('Transpose', [out + '/split'], [out + '/transposed'],
                             name=out + '/transpose', perm=[0, 2, 1, 3]),
            helper.make_node('Reshape', [out + '/transposed', merged], [out],
                             name=out + '/merge')]


def convert_reorder(node, **kwargs):
    (x,) = _input_names(node, kwargs)
    return _permute(x, node['name'], _input_shape(node), int(node['attrs']['branch_factor']),
                    kwargs)


def _parameter(node, position, kwargs):
    """The value of the parameter that input ``position`` of ``node`` reads (through the
    wrappers' identity copies)."""
    graph = kwargs['mx_graph']
    source = graph[node['inputs'][position][0]]
    while source['op'] in ('_copy', 'identity'):
        source = graph[source['inputs'][0][0]]
    return kwargs['weights'][source['name']]


def _relu(attrs):
    """Whether an extension op's act_type asks for a ReLU after it."""
    act = attrs.get('act_type', 'None')
    if act not in ('None', 'relu'):
        raise ExportError(f"act_type={act!r}: expected 'relu' or None")
    return act == 'relu'


def _epilogue(nodes, produced, name, residual, relu):
    """``nodes`` making ``produced``, then + ``residual`` (an input name, or None), then
    Relu where ``relu``; the last of them writes ``name``."""
    steps = ([('Add', [residual])] if residual else []) + ([('Relu', [])] if relu else [])
    for k, (op, more) in enumerate(steps):
        out = name if k == len(steps) - 1 else f'{name}/{op.lower()}'
        nodes.append(helper.make_node(op, [produced, *more], [out], name=out))
        produced = out
    return nodes


def convert_interleaved_group_conv(node, **kwargs):
    x, weight, *rest = _input_names(node, kwargs)
    name, attrs = node['name'], node['attrs']
    L, M = int(attrs['primary_partition']), int(attrs['secondary_partition'])
    residual = rest.pop() if symbol_attrs.flag(attrs, 'with_residual', False) else None
    shape = _input_shape(node)
    nodes = _permute(x, name + '/primary_order', shape, L, kwargs)
    bias = []
    if rest:
        # the op adds bias[c] to output channel c; the Conv's bias goes by weight row
        by_row = _parameter(node, 2, kwargs)[interleaved_rows(shape[1], M)]
        bias = [name + '/bias']
        kwargs['initializer'].append(numpy_helper.from_array(by_row, bias[0]))
    nodes.append(helper.make_node('Conv', [name + '/primary_order', weight, *bias],
                                  [name + '/secondary_conv'], name=name + '/secondary_conv',
                                  kernel_shape=[1, 1], group=M))
    relu = _relu(attrs)
    permuted = name + '/secondary_order' if residual or relu else name
    nodes += _permute(name + '/secondary_conv', permuted, shape, M, kwargs)
    return _epilogue(nodes, permuted, name, residual, relu)


def convert_group_convolution(node, **kwargs):
    inputs = _input_names(node, kwargs)
    name, attrs = node['name'], node['attrs']
    kernel = list(symbol_attrs.ints(attrs, 'kernel', ()))
    pad = list(symbol_attrs.ints(attrs, 'pad', [0] * len(kernel)))
    relu = _relu(attrs)
    conv = name + '/conv' if relu else name
    nodes = [helper.make_node('Conv', inputs, [conv], name=conv, kernel_shape=kernel,
                              strides=list(symbol_attrs.ints(attrs, 'stride', [1, 1])),
                              pads=pad + pad,
                              dilations=list(symbol_attrs.ints(attrs, 'dilate', [1, 1])),
                              group=symbol_attrs.integer(attrs, 'num_group', 1))]
    return _epilogue(nodes, conv, name, None, relu)


def register_converters():
    """Register the converters with MXNet's exporter (idempotent)."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    for op, fn in (('Reorder', convert_reorder),
                   ('InterleavedGroupConv', convert_interleaved_group_conv),
                   ('GroupConvolution', convert_group_convolution)):
        MXNetGraph.register(op, opset_version=12)(fn)


@contextlib.contextmanager
def _raw_initializers():
    """MXNet's converter of parameters, writing the values as raw bytes instead of a
    Python list of floats (the same tensor, 20x faster for a ResNet-18) while we export."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    registry = MXNetGraph.registry_[12]
    original = registry['null']

    def convert_variable(node, **kwargs):
        if kwargs['is_input']:
            return original(node, **kwargs)
        value = kwargs['weights'][node['name']]
        kwargs['initializer'].append(numpy_helper.from_array(value, node['name']))
        elem_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        return [helper.make_tensor_value_info(node['name'], elem_type, value.shape)], \
            (value.dtype,)

    registry['null'] = convert_variable
    try:
        yield
    finally:
        registry['null'] = original


# ----------------------------------------------------------------------------- export


def _shapes(graph, symbol, input_shape):
    """{(node index, output index): shape} of every entry that feeds an extension op."""
    internals = symbol.get_internals()
    _, out_shapes, _ = infer_shape(internals, data=input_shape)
    if out_shapes is None:
        raise ExportError(f'cannot infer the shapes of the symbol for input {input_shape}')
    by_name = dict(zip(internals.list_outputs(), out_shapes, strict=True))
    shapes = {}
    for node in graph['nodes']:
        if node['op'] not in EXTENSION_OPS:
            continue
        index, output = node['inputs'][0][:2]
        source = graph['nodes'][index]
        key = source['name'] if source['op'] == 'null' else f"{source['name']}_output"
        if output or key not in by_name:
            raise ExportError(f"cannot find the input shape of {node['op']} '{node['name']}'")
        shapes[(index, output)] = tuple(by_name[key])
    return shapes


def _export_params(symbol, arg_params, aux_params, input_shape):
    """Float32 copies of the parameters of ``symbol`` (checked against it), with gamma 1
    where a BatchNorm has ``fix_gamma`` (MXNet then ignores the stored gamma)."""
    try:
        check_params(symbol, arg_params, aux_params, input_shape)
    except ModelFileError as err:
        raise ExportError(str(err)) from None
    wanted = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    params = {name: mx.nd.array(value.asnumpy() if isinstance(value, mx.nd.NDArray)
                                else value, dtype=np.float32)
              for name, value in {**arg_params, **aux_params}.items() if name in wanted}
    for node in json.loads(symbol.tojson())['nodes']:
        if node['op'] == 'BatchNorm' and symbol_attrs.flag(node.get('attrs', {}), 'fix_gamma',
                                                           True):
            gamma = f"{node['name']}_gamma"
            if gamma in params:
                params[gamma] = mx.nd.ones_like(params[gamma])
    return params


def _explicit_defaults(symbol):
    """FullyConnected's default ``flatten=True`` written out: MXNet's converter reads an
    absent attribute as False and then emits a Shape/Slice/Concat/Reshape chain around
    the Gemm that computes the same thing."""
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        if node['op'] == 'FullyConnected' and 'flatten' not in node.get('attrs', {}):
            node.setdefault('attrs', {})['flatten'] = 'True'
    return mx.sym.load_json(json.dumps(graph))


def split_head(symbol):
    """(body, softmax): a SoftmaxOutput head is replaced by the softmax it computes at
    inference, so that the model has no label input. ``body`` is the symbol without that
    head; ``softmax`` is None without one, else (axis, flatten first)."""
    head = json.loads(symbol.tojson())['nodes'][-1]
    if head['op'] != 'SoftmaxOutput':
        return symbol, None
    multi = symbol_attrs.flag(head.get('attrs', {}), 'multi_output', False)
    return symbol.get_children()[0], (1 if multi else -1, not multi)


def to_onnx(symbol, arg_params, aux_params, input_shape, permutation=DEFAULT_PERMUTATION,
            logits=False):
    """An ``onnx.ModelProto`` of ``symbol`` with the given parameters, for inputs of
    ``input_shape`` (N, C, H, W) with any batch size N. The output is what the symbol
    computes at inference (class probabilities after a SoftmaxOutput head), or with
    ``logits=True`` the scores before that softmax."""
    ensure_loaded()
    if permutation not in PERMUTATIONS:
        raise ExportError(f'permutation={permutation!r}: expected one of {PERMUTATIONS}')
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ExportError(f'input shape {input_shape}: expected 4 positive sizes N,C,H,W')
    body, softmax = split_head(symbol)
    body = _explicit_defaults(body)
    if 'data' not in body.list_arguments():
        raise ExportError("the symbol has no input called 'data'")
    params = _export_params(body, arg_params, aux_params, input_shape)
    graph = json.loads(body.tojson())
    register_converters()
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    with _export_context(shapes=_shapes(graph, body, input_shape), permutation=permutation), \
            _raw_initializers():
        try:
            proto = MXNetGraph().create_onnx_graph_proto(
                body, params, [input_shape], [onnx.TensorProto.FLOAT],
                opset_version=onnx.defs.onnx_opset_version(), dynamic=True,
                dynamic_input_shapes=[(None, *input_shape[1:])])
        except (AttributeError, NotImplementedError) as err:
            # MXNet's exporter: an op without a converter, or an unsupported attribute
            raise ExportError(str(err)) from None
    model = helper.make_model(proto, producer_name='igc_mx')
    _, (output_shape,), _ = infer_shape(body, data=input_shape)
    if softmax is not None and not logits:
        output_shape = _append_softmax(model.graph, symbol.name, *softmax, output_shape)
    _finish(model.graph, input_shape, output_shape)
    onnx.checker.check_model(model)
    return model


def _append_softmax(graph, name, axis, flatten, shape):
    """Make ``name`` = softmax(graph output) the graph's output; returns its shape."""
    (scores,) = graph.output
    source = scores.name
    if flatten and len(shape) != 2:
        graph.node.append(helper.make_node('Flatten', [source], [name + '/flat'],
                                           name=name + '/flat', axis=1))
        source, shape = name + '/flat', (shape[0], int(np.prod(shape[1:])))
    graph.node.append(helper.make_node('Softmax', [source], [name], name=name, axis=axis))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(name, scores.type.tensor_type.elem_type,
                                                      [None] * len(shape)))
    return shape


def _finish(graph, input_shape, output_shape):
    """Initializers out of the graph inputs, Identity nodes dropped, unused initializers
    removed, sizes of the input and output written, batch dim named."""
    constants = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    del graph.input[:]
    graph.input.extend(inputs)

    # Identity nodes (the op wrappers' copies of parameters and data): their readers
    # take the identity's input itself.
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == 'Identity' and n.output[0] not in outputs}
    kept = [n for n in graph.node if n.output[0] not in alias]
    for node in kept:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)

    for value, shape in ((graph.input[0], input_shape), (graph.output[0], output_shape)):
        dims = value.type.tensor_type.shape.dim
        for i, size in enumerate(shape):
            dims[i].Clear()
            if i == 0:
                dims[i].dim_param = BATCH_DIM
            else:
                dims[i].dim_value = int(size)


def export(symbol, arg_params, aux_params, input_shape, path,
           permutation=DEFAULT_PERMUTATION, logits=False):
    """Write the ONNX model of ``to_onnx`` to ``path`` atomically; returns the model."""
    model = to_onnx(symbol, arg_params, aux_params, input_shape, permutation, logits)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
    return model


def describe(model):
    """One line: opset, node counts by op, input and output with their sizes."""
    def value(v):
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return f"{v.name} [{', '.join(str(d) for d in dims)}]"
    counts = ', '.join(f'{op} {n}' for op, n in sorted(op_counts(model).items(),
                                                         key=lambda kv: -kv[1]))
    opset = max(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))
    return (f'ONNX opset {opset}, {len(model.graph.node)} nodes ({counts}), '
            f'{value(model.graph.input[0])} -> {value(model.graph.output[0])}')


def op_counts(model):
    """{ONNX op type: count} of a model's graph."""
    counts = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
