"""Parameters of Gluon networks: the training recipe's initialization, and loading the
files that training (``train_model.py``, ``train_imagenet.py``) and ``net.export`` write.

A checkpoint, a Gluon export and the published symbol files name the parameters alike
(``igc_mx.gluon.layers``), so loading needs no renaming: ``arg:``/``aux:`` keys map to
the parameter of that name.
"""
import mxnet as mx

from .. import model_files
from ..model_files import ModelFileError
from ..training import optim

#: parameter-name endings that MXNet's initializers, the recipe's among them, serve by name
BY_NAME = ('weight', 'bias', 'gamma', 'beta')


class _Recipe(mx.init.Initializer):
    """``optim.initializer()`` chosen by the parameter's name, as ``Module.init_params``
    applies it (Gluon hands a parameter's initializer the array directly)."""

    def __init__(self):
        super().__init__()
        self._recipe = optim.initializer()

    def _init_weight(self, name, arr):
        self._recipe(mx.init.InitDesc(str(name)), arr)


def initialize(net, ctx=None):
    """Initialize every parameter of ``net`` as ``Module`` initializes the symbol with the
    recipe's initializer (``optim.initializer``): parameters ending in ``BY_NAME`` by
    name (Xavier for weights, bias and beta 0, gamma 1), the others (BatchNorm's moving
    mean 0 and variance 1) by their own initializer, as the symbol's statistics by the
    one BatchNorm gives them. In sorted name order, as ``Module.init_params`` draws them:
    with the same seed, the values are those ``Module`` draws. Replaces any values."""
    params = net.collect_params()
    recipe = _Recipe()
    for name in sorted(params.keys()):
        param = params[name]
        own = None if name.endswith(BY_NAME) else param.init
        param.initialize(init=own or recipe, ctx=ctx, force_reinit=True)


def load_params(net, path, ctx=None):
    """Load a parameters file into ``net``: a checkpoint's ``.params``, a Gluon export's,
    or any file of ``arg:``/``aux:`` or plain parameter names (``set_params``)."""
    set_params(net, model_files.read_params(str(path)), ctx, source=str(path))


def set_params(net, arrays, ctx=None, source='the parameters'):
    """Set the parameters of ``net`` from ``arrays`` ({name: array}, the names with or
    without ``arg:``/``aux:``, e.g. a Module's arg_params and aux_params together), cast
    to the parameters' types (float32 checkpoints into float16 networks). ModelFileError,
    naming ``source`` and the parameter, unless ``arrays`` holds exactly the network's
    parameters with their shapes."""
    arrays = {name.split(':', 1)[1] if name.startswith(('arg:', 'aux:')) else name: value
              for name, value in arrays.items()}
    params = net.collect_params()
    check_fits(source, params, arrays)
    params.load_dict(arrays, ctx=ctx, cast_dtype=True, dtype_source='current')


def load_checkpoint(net, prefix, epoch, ctx=None):
    """Load epoch ``epoch`` of the checkpoint ``prefix`` (``prefix-NNNN.params``, as the
    train scripts and ``net.export`` write it) into ``net``; see ``load_params``."""
    path = f'{prefix}-{epoch:04d}.params'
    epochs = model_files.saved_epochs(prefix)
    if epoch not in epochs:
        found = ', '.join(str(e) for e in epochs) if epochs else 'none'
        raise ModelFileError(f'no checkpoint {path} (prefix {prefix}, epoch {epoch}); saved '
                             f'epochs: {found}')
    load_params(net, path, ctx)


def check_fits(source, params, arrays):
    """ModelFileError unless ``arrays`` ({name: array}) has every parameter of ``params``
    (a ParameterDict) with its shape, and nothing else. A 0 in a shape is a size that the
    first forward call fixes: any size fits it."""
    missing = [name for name in params if name not in arrays]
    extra = [name for name in arrays if name not in params]
    if missing:
        raise ModelFileError(f"{source}: no '{missing[0]}'{_more(missing)}, which the network "
                             f'needs (a file of another network, or other partitions?)')
    if extra:
        raise ModelFileError(f"{source}: '{extra[0]}'{_more(extra)} is not a parameter of the "
                             'network (a file of another network?)')
    for name, param in params.items():
        have, want = tuple(arrays[name].shape), tuple(param.shape)
        if len(have) != len(want) or any(w not in (0, h) for w, h in zip(want, have, strict=True)):
            raise ModelFileError(f"{source}: '{name}' has shape {have}; the network needs {want}")


def _more(names):
    return f' and {len(names) - 1} more' if len(names) > 1 else ''
