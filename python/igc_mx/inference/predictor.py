"""``Predictor``: class probabilities of image batches from a checkpoint, with no Module.

The checkpoint is rebuilt as the default graph (``igc_mx.model_files.as_graph``) and
optimized for inference (``optimize``) once per image size; an executor is bound once
per batch shape and reused for every later batch of that shape (a bind costs far more
than a forward pass at batch 1).
"""
import json

import mxnet as mx
import numpy as np

from .. import model_files
from .optimize import InferenceError, optimize

#: Heads whose output is already the class probabilities.
PROBABILITY_HEADS = ('SoftmaxOutput', 'softmax', 'SoftmaxActivation')


def with_probabilities(symbol):
    """``symbol``, with a softmax over its last axis when it ends in class scores."""
    if json.loads(symbol.tojson())['nodes'][-1]['op'] in PROBABILITY_HEADS:
        return symbol
    return mx.sym.softmax(symbol, axis=-1, name='probabilities')


class Predictor:
    """``Predictor(prefix, epoch)(images)``: the class probabilities, (N, classes) numpy,
    of ``images``, (N, C, H, W) normalized as in training (a numpy array or anything
    ``np.asarray`` takes; computed in float32).

    ``graph``: 'default' (the fast ops) or 'original' (the 2017 original's ops);
    ``optimized``: fold BatchNorm and ReLU (``optimize``) or run the graph as it is;
    ``context``: an MXNet context (default the CPU)."""

    def __init__(self, prefix, epoch, graph='default', optimized=True, context=None):
        if graph not in model_files.GRAPHS:
            raise InferenceError(f'graph={graph!r}: expected one of {model_files.GRAPHS}')
        symbol_path, params_path = model_files.checkpoint_files(prefix, epoch)
        self.symbol = model_files.load_symbol(symbol_path)
        self.arg_params, self.aux_params = model_files.load_params(params_path, self.symbol)
        self.params_path = params_path
        self.graph, self.optimized = graph, optimized
        self.context = context or mx.cpu()
        self._models = {}       # image shape (C, H, W) -> (symbol, arg_params, aux_params)
        self._executors = {}    # batch shape -> bound executor

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or 0 in images.shape:
            raise InferenceError(f'images of shape {images.shape}: expected a batch '
                                 '(N, C, H, W) of at least one image')
        executor = self._executor(images.shape)
        executor.arg_dict['data'][:] = images
        executor.forward(is_train=False)
        return executor.outputs[0].asnumpy()

    def _executor(self, shape):
        if shape not in self._executors:
            symbol, args, aux = self._model(shape)
            executor = symbol.simple_bind(self.context, data=shape, grad_req='null')
            executor.copy_params_from(args, aux, allow_extra_params=True)
            self._executors[shape] = executor
        return self._executors[shape]

    def _model(self, shape):
        if shape[1:] not in self._models:
            device = 'gpu' if self.context.device_type == 'gpu' else 'cpu'
            model_files.check_params(self.symbol, self.arg_params, self.aux_params, shape,
                                     source=self.params_path)
            symbol = with_probabilities(model_files.as_graph(self.symbol, self.graph, shape,
                                                             device))
            model = (symbol, self.arg_params, self.aux_params)
            if self.optimized:
                model = optimize(*model, shape, device)
            self._models[shape[1:]] = model
        return self._models[shape[1:]]
