"""``optimize``: a trained symbol and its parameters turned into an inference graph.

Every BatchNorm that follows a convolution (``Convolution``, ``GroupConvolution``,
``InterleavedGroupConv``, through Reorders too) is folded into it, so the result holds
no BatchNorm whatever executor binds it. On the CPU a residual sum after
``InterleavedGroupConv`` becomes its ``with_residual`` input and a ReLU after
``GroupConvolution`` or ``InterleavedGroupConv`` their ``act_type`` (MXNet's oneDNN
subgraph backend already fuses ``Convolution`` with the ReLU or residual sum after it at
bind time, and still does on the folded graph), and a ``Convolution`` before a pooling
gets its filters padded to oneDNN's channel block. The identity copies that the op
wrappers put in front of parameters for training go. The outputs equal the original
graph's to float32 precision. See ``fold`` for the details.
"""
import json

import mxnet as mx
import numpy as np

from .. import devices
from .._library import ensure_loaded
from ..model_files import ModelFileError, check_params
from .fold import fold

#: Heads that make a symbol a training graph: their output is a loss, not a prediction.
#: (SoftmaxOutput computes the softmax at inference and is taken as it is.)
LOSS_OPS = ('MakeLoss', 'make_loss', 'LinearRegressionOutput', 'LogisticRegressionOutput',
            'MAERegressionOutput', 'SVMOutput', 'softmax_cross_entropy', 'CTCLoss',
            '_contrib_CTCLoss', 'ctc_loss', 'IdentityAttachKLSparseReg')


class InferenceError(ValueError):
    """A symbol, parameters or input shape that cannot make an inference graph."""


def optimize(symbol, arg_params, aux_params, data_shape, device='cpu'):
    """(symbol, arg_params, aux_params) for inference on input ``data_shape`` (N, C, H, W)
    with the symbol's input called 'data'. The parameters are checked against the
    symbol first; the result holds only the parameters its symbol reads. ``device='gpu'``
    folds BatchNorm into ``Convolution`` only (the extension ops run no bias on a GPU)."""
    ensure_loaded()
    devices.check_device(device)
    data_shape = _data_shape(data_shape)
    check_inference_graph(symbol)
    try:
        check_params(symbol, arg_params, aux_params, data_shape)
    except ModelFileError as err:
        raise InferenceError(str(err)) from None
    wanted = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    params = {name: np.asarray(value.asnumpy() if isinstance(value, mx.nd.NDArray) else value)
              for name, value in {**arg_params, **aux_params}.items() if name in wanted}
    graph, params = fold(json.loads(symbol.tojson()), params, device)
    _declare_shapes(graph, params)
    optimized = mx.sym.load_json(json.dumps(graph))

    def arrays(names):
        return {n: mx.nd.array(params[n], dtype=params[n].dtype) for n in names if n in params}
    return (optimized, arrays(optimized.list_arguments()),
            arrays(optimized.list_auxiliary_states()))


def _declare_shapes(graph, params):
    """Every parameter variable's shape as its ``__shape__``. MXNet 1.9.1's extension
    glue sizes a buffer of input dimensions counting an input of unknown shape as -1
    dimensions and overruns it by one element per such input; an op with a bias and a
    residual would otherwise meet its first shape inference with two unknown inputs."""
    for node in graph['nodes']:
        if node['op'] == 'null' and node['name'] in params:
            node['attrs'] = dict(node.get('attrs', {}),
                                 __shape__=str(tuple(params[node['name']].shape)))


def check_inference_graph(symbol):
    """InferenceError unless ``symbol`` reads an input 'data' and none of its outputs is
    a loss."""
    if 'data' not in symbol.list_arguments():
        raise InferenceError(f"the symbol has no input called 'data' (its inputs: "
                             f"{', '.join(symbol.list_arguments()) or 'none'})")
    graph = json.loads(symbol.tojson())
    for head in graph['heads']:
        node = graph['nodes'][head[0]]
        if node['op'] in LOSS_OPS:
            raise InferenceError(f"output '{node['name']}' is a loss ({node['op']}), not a "
                                 'prediction: give the symbol of the network without its '
                                 'loss head (a SoftmaxOutput head is fine)')


def _data_shape(shape):
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise InferenceError(f'data_shape={shape!r}: expected 4 positive sizes N, C, H, '
                             'W') from None
    if len(shape) != 4 or min(shape) < 1:
        raise InferenceError(f'data_shape={shape}: expected 4 positive sizes N, C, H, W')
    return shape
