"""Read a trained model from disk, for the after-training commands (evaluate, ONNX export).

A model is a symbol file plus a parameters file: either a checkpoint
``<prefix>-symbol.json`` + ``<prefix>-%04d.params`` (what training writes), or any
symbol and parameters files (e.g. a published ``*-symbol.json``, or the output of
tools/fuse_symbol.py). Every problem is a ``ModelFileError`` with a one-line message
naming the file or parameter and what was expected.
"""
import contextlib
import glob
import io
import os
import re

import mxnet as mx

from ._library import ensure_loaded
from .rewrite import fuse_igc, unfuse_igc

#: --graph choices: the fast ops, or the 2017 original's ops (same parameters)
GRAPHS = ('default', 'original')


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or does not fit its symbol."""


def add_model_args(parser, positional=False):
    """--prefix/--epoch, and --symbol/--params (or SYMBOL PARAMS positionals)."""
    group = parser.add_argument_group(
        'Model', 'a checkpoint (--prefix, --epoch) or a symbol file and a parameters file')
    group.add_argument('--prefix', help='checkpoint prefix: reads PREFIX-symbol.json and '
                                        'PREFIX-NNNN.params')
    group.add_argument('--epoch', type=int, help='checkpoint epoch (with --prefix)')
    if positional:
        group.add_argument('symbol', nargs='?', help='symbol file (*-symbol.json)')
        group.add_argument('params', nargs='?', help='parameters file (*.params)')
    else:
        group.add_argument('--symbol', help='symbol file (*-symbol.json)')
        group.add_argument('--params', help='parameters file (*.params)')
    return group


def sizes(text):
    """The positive integer sizes of a comma-separated ``text`` such as '1,3,224,224', or
    None when it is not one: what the tools' shape options parse, each checking the count."""
    try:
        values = tuple(int(v) for v in text.split(','))
    except ValueError:
        return None
    return values if values and min(values) >= 1 else None


def files_from_args(parser, args):
    """(symbol path, params path, label) of existing files from the model arguments; a
    wrong combination is an argparse error, a missing file a ModelFileError."""
    if args.prefix is not None:
        if args.symbol or args.params:
            parser.error('give either --prefix/--epoch or a symbol and a params file, not both')
        if args.epoch is None:
            parser.error('--prefix needs --epoch')
        return checkpoint_files(args.prefix, args.epoch) + (f'{args.prefix}-{args.epoch:04d}',)
    if args.epoch is not None:
        parser.error('--epoch needs --prefix')
    if not (args.symbol and args.params):
        parser.error('give a model: --prefix P --epoch N, or a symbol file and a params file')
    for kind, path in (('symbol', args.symbol), ('parameters', args.params)):
        if not os.path.isfile(path):
            raise ModelFileError(f'{kind} file {path} does not exist')
    return args.symbol, args.params, os.path.splitext(os.path.basename(args.params))[0]


def checkpoint_files(prefix, epoch):
    """(symbol path, params path) of a checkpoint; an error lists the saved epochs."""
    symbol = f'{prefix}-symbol.json'
    params = f'{prefix}-{epoch:04d}.params'
    if not os.path.isfile(symbol):
        raise ModelFileError(f'no checkpoint symbol file {symbol} (--prefix {prefix})')
    if not os.path.isfile(params):
        epochs = saved_epochs(prefix)
        found = ', '.join(str(e) for e in epochs) if epochs else 'none'
        raise ModelFileError(f'no checkpoint {params} (--prefix {prefix} --epoch {epoch}); '
                             f'saved epochs: {found}')
    return symbol, params


def saved_epochs(prefix):
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4,})\.params$')
    found = (pattern.match(os.path.basename(p)) for p in glob.glob(glob.escape(prefix) +
                                                                    '-*.params'))
    return sorted(int(m.group(1)) for m in found if m)


def load_symbol(path):
    ensure_loaded()
    if not os.path.isfile(path):
        raise ModelFileError(f'symbol file {path} does not exist')
    try:
        return mx.sym.load(path)
    except mx.base.MXNetError as err:
        raise ModelFileError(f'symbol file {path} cannot be read: '
                             f'{error_line(err)}') from None


def read_params(path):
    """{name: array} of a parameters file, the names as saved."""
    if not os.path.isfile(path):
        raise ModelFileError(f'parameters file {path} does not exist')
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ModelFileError(f'parameters file {path} cannot be read: '
                             f'{error_line(err)}') from None
    if not isinstance(saved, dict):
        raise ModelFileError(f'parameters file {path} holds unnamed arrays, not parameters')
    return saved


def load_params(path, symbol):
    """(arg_params, aux_params) from a parameters file, split as ``symbol`` says when the
    file has no ``arg:``/``aux:`` prefixes."""
    saved = read_params(path)
    aux_names = set(symbol.list_auxiliary_states())
    arg_params, aux_params = {}, {}
    for key, value in saved.items():
        kind, _, name = key.partition(':')
        if not name:
            kind, name = ('aux' if key in aux_names else 'arg'), key
        (aux_params if kind == 'aux' else arg_params)[name] = value
    return arg_params, aux_params


def parameter_shapes(symbol, data_shape):
    """({argument: shape}, {auxiliary state: shape}) of the parameters of ``symbol``
    (its arguments but the data and the labels, and its auxiliary states) for input
    ``data_shape`` (N, C, H, W), in the symbol's order; MXNetError or ValueError when
    the symbol does not take that input."""
    arg_shapes, _, aux_shapes = infer_shape(symbol, data=tuple(data_shape))
    if arg_shapes is None:
        raise ValueError(f'cannot infer the shapes of the symbol for input '
                         f'{tuple(data_shape)}')
    args = {n: tuple(s) for n, s in zip(symbol.list_arguments(), arg_shapes, strict=True)
            if n != 'data' and not n.endswith('_label')}
    return args, {n: tuple(s)
                  for n, s in zip(symbol.list_auxiliary_states(), aux_shapes, strict=True)}


def check_params(symbol, arg_params, aux_params, data_shape, source='the parameters'):
    """Raise ModelFileError unless every parameter of ``symbol`` (``parameter_shapes``)
    is given with the shape the symbol has for input ``data_shape`` (N, C, H, W)."""
    try:
        arg_shapes, aux_shapes = parameter_shapes(symbol, data_shape)
    except mx.base.MXNetError as err:
        raise ModelFileError(f'the symbol does not take input {tuple(data_shape)}: '
                             f'{error_line(err)}') from None
    except ValueError as err:
        raise ModelFileError(str(err)) from None
    wanted = [(n, s, arg_params) for n, s in arg_shapes.items()]
    wanted += [(n, s, aux_params) for n, s in aux_shapes.items()]
    missing = [n for n, _, given in wanted if n not in given]
    if missing:
        more = f' and {len(missing) - 1} more' if len(missing) > 1 else ''
        raise ModelFileError(f"{source}: no '{missing[0]}'{more}, which the symbol needs")
    for name, shape, given in wanted:
        if tuple(given[name].shape) != shape:
            raise ModelFileError(f"{source}: '{name}' has shape {tuple(given[name].shape)}; "
                                 f"the symbol expects {shape} for input "
                                 f"{tuple(data_shape)}")


def infer_shape(symbol, **shapes):
    """``symbol.infer_shape`` without the argument list MXNet prints on failure (the
    error is raised as usual)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return symbol.infer_shape(**shapes)


def as_graph(symbol, graph, data_shape=None, device='cpu'):
    """``symbol`` with the fast ops ('default': igc_mx.rewrite.fuse_igc, as the builders
    choose them for ``device``) or the original's ops ('original':
    igc_mx.rewrite.unfuse_igc); parameters are unchanged."""
    if graph == 'default':
        # through the original graph, so that the primary convolutions follow the
        # builders' rule whatever the saved symbol used
        return fuse_igc(unfuse_igc(symbol, data_shape), device=device)
    if graph == 'original':
        return unfuse_igc(symbol, data_shape)
    raise ValueError(f'graph={graph!r}: expected one of {GRAPHS}')


def load(symbol_path, params_path, data_shape, graph=None, device='cpu'):
    """(symbol, arg_params, aux_params), checked against each other for ``data_shape``;
    the symbol rebuilt as ``graph`` says (None keeps it as saved) for ``device``."""
    symbol = load_symbol(symbol_path)
    arg_params, aux_params = load_params(params_path, symbol)
    check_params(symbol, arg_params, aux_params, data_shape, source=params_path)
    if graph is not None:
        try:
            symbol = as_graph(symbol, graph, data_shape, device)
        except (ValueError, mx.base.MXNetError) as err:
            raise ModelFileError(f'{symbol_path}: cannot rebuild the {graph} graph: '
                                 f'{error_line(err)}') from None
    return symbol, arg_params, aux_params


def error_line(err):
    """The line of an exception that says what went wrong."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    # MXNet puts its own message after a stack trace; the last line says what went wrong.
    return lines[-1] if lines else type(err).__name__
