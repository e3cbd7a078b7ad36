"""Export MXNet symbols with the IGC operators to ONNX (standard ONNX ops only).

``to_onnx`` checks the symbol (one output, one input ``data``, one name per node, float32
throughout, only ops of the converter table), converts each op with its converter
(``igc_mx.onnx_converters``, which refuses what it cannot reproduce exactly) and writes
the model: parameters are initializers (not graph inputs, which would make ONNX Runtime
treat them as overridable and skip constant folding), identity copies (such as the
``<weight>_identity`` copies that the op wrappers put between a parameter and an extension
op, ``igc_mx._ops``) are left out, a SoftmaxOutput head becomes the softmax it computes at
inference (or is left out: ``logits``), and the batch dimension of the input and output
is dynamic (``'batch'``). What cannot be exported is an ExportError, one line naming the
op, the node and the attribute.

MXNet's own exporter (``mx.onnx``) is not used: at 1.9.1 several of its converters write
models that compute something else, with no error (SoftmaxOutput's preserve_shape and
multi_output, lp pooling, average pooling with pooling_convention='full', LRN's default
knorm, PReLU's slope axis, attributes written as 'true' or '[3,3]'), and others fail with
a traceback (Deconvolution's default no_bias, stride='()').

ONNX has no channel-shuffle op. A permutation of the channels of an (N, C, H, W) tensor
into g groups is exported as ``Reshape(N, g, C/g, H*W) -> Transpose(0, 2, 1, 3) ->
Reshape(N, C, H, W)`` with the shapes written out ('transpose', the default), or as a
1x1 convolution with a C x C permutation matrix ('conv'). docs/after_training.md has
the measurements behind the default.

``import onnx`` below is the ONNX package: imports in this package are absolute.
"""
import json

import mxnet as mx
import numpy as np
import onnx
from mxnet.ndarray.ndarray import _DTYPE_MX_TO_NP
from onnx import helper

from . import symbol_attrs
from ._library import ensure_loaded
from .atomic import atomic_path
from .model_files import ModelFileError, check_params, error_line, infer_shape, parameter_shapes
from .onnx_converters import CONVERTERS, Builder, ExportError, nodes_of, softmax_output

#: how a channel permutation is exported
PERMUTATIONS = ('transpose', 'conv')
DEFAULT_PERMUTATION = 'transpose'
BATCH_DIM = 'batch'
#: the opset of the installed onnx package (19 for onnx 1.14.1)
OPSET = onnx.defs.onnx_opset_version()


# ----------------------------------------------------------------------------- the head


def split_head(symbol):
    """(body, head): a SoftmaxOutput head is taken off, so that the model has no label
    input; ``head`` is its JSON node (None without one), which ``to_onnx`` exports as the
    softmax it computes at inference."""
    head = json.loads(symbol.tojson())['nodes'][-1]
    if head['op'] != 'SoftmaxOutput':
        return symbol, None
    return symbol.get_children()[0], head


# ----------------------------------------------------------------------------- checks


def _check_structure(symbol, nodes, graph):
    """One name per node, the input 'data', each op's first output only."""
    seen = set()
    for node in nodes:
        if node.name in seen:
            kind = 'inputs' if node.op == 'null' else 'nodes'
            raise ExportError(f"the symbol has two {kind} named '{node.name}': the export "
                              'needs one name per node')
        seen.add(node.name)
    if 'data' not in symbol.list_arguments():
        raise ExportError("the symbol has no input called 'data'")
    for node in nodes:
        for source, output in node.inputs:
            if output != 0:
                producer = nodes[source]
                raise ExportError(f"{node.op} '{node.name}' reads output {output} of "
                                  f"{producer.op} '{producer.name}': the export takes each "
                                  "op's first output only")
    if graph['heads'][0][1] != 0:
        producer = nodes[graph['heads'][0][0]]
        raise ExportError(f"the symbol's output is output {graph['heads'][0][1]} of "
                          f"{producer.op} '{producer.name}': the export takes each op's first "
                          'output only')


def _check_ops(nodes):
    for node in nodes:
        if node.op == 'null' or node.op in CONVERTERS:
            continue
        if node.op == 'SoftmaxOutput':
            node.refuse('the export takes SoftmaxOutput as the symbol\'s output only')
        raise ExportError(f"{node.op} '{node.name}': no ONNX converter for the op {node.op} "
                          f'(the export converts {", ".join(sorted(CONVERTERS))})')


def _entry_key(node):
    return node.name if node.op == 'null' else f'{node.name}_output'


def _infer(symbol, nodes, input_shape):
    """{node index: shape of its first output}; ExportError for a value that is not
    float32."""
    internals = symbol.get_internals()
    names = internals.list_outputs()
    _, shapes, _ = infer_shape(internals, data=input_shape)
    if shapes is None:
        raise ExportError(f'cannot infer the shapes of the symbol for input {input_shape}')
    # the data's type as the symbol gives it (a __dtype__), else float32; parameters take
    # the types the ops give them (the export writes them as float32 when they are)
    data = next(n for n in nodes if n.op == 'null' and n.name == 'data')
    given = {} if '__dtype__' in data.attrs else {'data': 'float32'}
    try:
        _, types, _ = internals.infer_type_partial(**given)
    except mx.base.MXNetError as err:
        raise ExportError(f'cannot infer the types of the symbol: {error_line(err)}') from None
    by_name = dict(zip(names, zip(shapes, types, strict=True), strict=True))
    result = {}
    for node in nodes:
        key = _entry_key(node)
        shape, dtype = by_name.get(key) or by_name.get(key + '0') or (None, None)
        if shape is None:
            raise ExportError(f"cannot find the output shape of {node.op} '{node.name}'")
        if dtype is not None and np.dtype(dtype) != np.float32:
            _refuse_type(node, np.dtype(dtype).name)
        result[node.index] = tuple(shape)
    return result


def _refuse_type(node, dtype):
    what = 'input' if node.op == 'null' else f"{node.op} '{node.name}'"
    raise ExportError(f'{what} computes in {dtype}: the export writes float32 models (a '
                      "network built with dtype='float16' is exported from its float32 "
                      'build, with the same parameters)')


def _check_types(nodes):
    """The values a node asks for in another type than float32 (before MXNet's type
    inference, which an op refusing that type would stop with its own message)."""
    for node in nodes:
        key = '__dtype__' if node.op == 'null' else 'dtype'
        dtype = symbol_attrs.text(node.attrs, key, None)
        if dtype is not None and dtype.isdigit():     # a variable's type is MXNet's code
            dtype = np.dtype(_DTYPE_MX_TO_NP.get(int(dtype), np.void)).name
        if dtype not in (None, 'float32'):
            _refuse_type(node, dtype)


def _export_params(symbol, arg_params, aux_params, input_shape):
    """Float32 numpy copies of the parameters of ``symbol`` (checked against it)."""
    try:
        check_params(symbol, arg_params, aux_params, input_shape)
    except ModelFileError as err:
        raise ExportError(str(err)) from None
    wanted = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    return {name: np.asarray(value.asnumpy() if isinstance(value, mx.nd.NDArray) else value,
                             dtype=np.float32)
            for name, value in {**arg_params, **aux_params}.items() if name in wanted}


# ----------------------------------------------------------------------------- export


def to_onnx(symbol, arg_params, aux_params, input_shape, permutation=DEFAULT_PERMUTATION,
            logits=False):
    """An ``onnx.ModelProto`` of ``symbol`` with the given parameters, for inputs of
    ``input_shape`` (N, C, H, W) with any batch size N. The output is what the symbol
    computes at inference (the softmax of a SoftmaxOutput head), or with ``logits=True``
    the scores before that softmax."""
    ensure_loaded()
    if permutation not in PERMUTATIONS:
        raise ExportError(f'permutation={permutation!r}: expected one of {PERMUTATIONS}')
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ExportError(f'input shape {input_shape}: expected 4 positive sizes N,C,H,W')
    outputs = symbol.list_outputs()
    if len(outputs) != 1:
        raise ExportError(f'the symbol has {len(outputs)} outputs ({", ".join(outputs)}): '
                          'the export takes a symbol with one')
    body, head = split_head(symbol)
    graph = json.loads(body.tojson())
    nodes = nodes_of(graph)
    _check_structure(body, nodes, graph)
    _check_ops(nodes)
    _check_types(nodes)
    params = _export_params(body, arg_params, aux_params, input_shape)
    output_dims = _batch_dims(body, input_shape)
    shapes = _infer(body, nodes, input_shape)
    b = Builder(nodes, params, shapes, permutation)
    for node in nodes:
        if node.op == 'null':
            b.values[node.index] = node.name
            continue
        b.values[node.index] = node.name
        try:
            CONVERTERS[node.op](b, node)
        except ValueError as err:       # symbol_attrs: a value of the wrong kind
            if isinstance(err, ExportError):
                raise
            raise ExportError(f"{node.op} '{node.name}': {err}") from None
    output = _output(b, nodes, graph, head, logits)
    return _model(b, input_shape, output, output_dims)


def _output(b, nodes, graph, head, logits):
    """The name of the model's output."""
    last = nodes[graph['heads'][0][0]]
    scores, shape = b.value(last.index), b.shapes[last.index]
    if scores != last.name or last.op == 'null':
        # an identity op, a parameter or the input itself: the output gets its own node
        scores = b.add('Identity', [scores],
                       last.name + ('/output' if last.op == 'null' else ''))
    if head is None or logits:
        return scores
    return softmax_output(b, head, scores, shape)


def _batch_dims(symbol, input_shape):
    """The output's sizes, ``BATCH_DIM`` for the batch and None for another size that
    follows it (from the shapes for batch N and N + 1); ExportError when a parameter's
    shape follows the batch size: it is an input, and the model has one, 'data'."""
    shapes = (input_shape, (input_shape[0] + 1, *input_shape[1:]))
    try:
        params = [parameter_shapes(symbol, shape) for shape in shapes]
        outputs = [infer_shape(symbol, data=shape)[1][0] for shape in shapes]
    except (mx.base.MXNetError, ValueError) as err:
        raise ExportError(f'the symbol does not take input {shapes[1]}: '
                          f'{error_line(err)}') from None
    for found, other in zip(params[0], params[1], strict=True):
        for name, shape in found.items():
            if other[name] != shape:
                raise ExportError(f"'{name}' has a shape that follows the batch size "
                                  f'({shape} for input {shapes[0]}, {other[name]} for '
                                  f"{shapes[1]}): it is an input, and the export takes one, "
                                  "'data'")
    return [BATCH_DIM if (a, b) == (shapes[0][0], shapes[1][0]) else a if a == b else None
            for a, b in zip(*outputs, strict=True)]


def _model(b, input_shape, output, output_dims):
    def value(name, dims):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)
    graph = helper.make_graph(b.nodes, 'igc_mx', [value('data', [BATCH_DIM, *input_shape[1:]])],
                              [value(output, output_dims)],
                              initializer=list(b.initializers.values()))
    model = helper.make_model(graph, producer_name='igc_mx',
                              opset_imports=[helper.make_opsetid('', OPSET)])
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ExportError(f'the exported graph is not valid ONNX: {error_line(err)}') from None
    return model


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
