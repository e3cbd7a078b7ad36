"""Python faces of the extension ops in ``mx.nd`` and ``mx.sym``.

MXNet's extension API does not tell a library the gradient request (write /
add) of its outputs, so an op cannot honour ``grad_req='add'`` by itself.
MXNet hands ``add`` only to the op that writes the gradient of a leaf (a
variable, a parameter, an array with ``attach_grad``). The wrappers below put
an ``identity`` between such a leaf and the op: MXNet's own ``identity``
backward then does the accumulation, and the extension op only ever writes.
Intermediate tensors, the common case inside networks, pass through untouched.

A symbol that was not built by the wrappers, such as one MXNet loads from a JSON file
saved without the copies (``mx.sym.load``, ``mx.model.load_checkpoint``,
``SymbolBlock.imports``), reaches its variables directly. MXNet's library API has no hook
that runs when such a symbol is bound: a library's graph passes (``REGISTER_PASS``) and
partitioners run only when ``Symbol.optimize_for`` names them, and ``MXNET_SUBGRAPH_BACKEND``
takes one backend, which on the CPU is oneDNN's. So ``install_bind_hooks`` puts the same
copies in at the two places where MXNet turns a symbol into something that computes
gradients: ``Symbol.simple_bind`` and ``Symbol.bind`` (and so ``Module``), when a
gradient request is 'add', and Gluon's ``CachedOp`` (hybridized blocks, ``SymbolBlock``),
whose requests are only known at backward time. The copies change neither the arguments
nor the outputs.

MXNet also hands ``add`` to the producers of a gradient that it sums in place,
which it does for tensors with at least MXNET_EXEC_INPLACE_GRAD_SUM_CAP (default
8) consumers. ``disable_inplace_grad_sum`` turns that off before MXNet builds its
first gradient graph; summing with ElementWiseSum instead costs memory only for
such tensors.
"""
import functools
import json
import os
import warnings

import mxnet as mx

INPLACE_SUM_CAP_ENV = 'MXNET_EXEC_INPLACE_GRAD_SUM_CAP'
# MXNet reads the cap once, parsing it as an int, when it first aggregates gradients.
NEVER = str(2 ** 31 - 1)

# Extension ops and the names of their array inputs, in order.
ARRAY_INPUTS = {'Reorder': ('data',), 'InterleavedGroupConv': ('data', 'weight'),
                'GroupConvolution': ('data', 'weight')}
# Ops that take a third input, 'bias', with no_bias=False (without no_bias, or with
# no_bias=True, they have none: symbols saved before the bias existed omit it).
# InterleavedGroupConv takes one more, 'residual', with with_residual=True.
BIAS_OPS = ('InterleavedGroupConv', 'GroupConvolution')

# Inputs that mx.sym creates as variables named '<op name>_<input>' when they are
# not given, as MXNet's own ops do for their parameters.
AUTO_VARIABLES = {'GroupConvolution': ('weight', 'bias'),
                  'InterleavedGroupConv': ('weight', 'bias')}

_FALSE = (False, 0, 'False', 'false', '0')
_TRUE = (True, 1, 'True', 'true', '1')


def input_names(op_name, params):
    """The array inputs of ``op_name`` with the parameters ``params``, in order."""
    names = ARRAY_INPUTS[op_name]
    if op_name in BIAS_OPS and params.get('no_bias', True) in _FALSE:
        names += ('bias',)
    if op_name == 'InterleavedGroupConv' and params.get('with_residual', False) in _TRUE:
        names += ('residual',)
    return names


def _is_nd_leaf(array):
    return mx.autograd.is_recording() and array.grad is not None


def _is_sym_leaf(symbol):
    return symbol.get_children() is None


def _check_nd_sizes(op_name, names, arrays):
    # In MXNet's default shape semantics a 0 in a shape means an unknown size, and an
    # array with one fails later with "Failed to allocate CPU Memory"; name the input
    # instead. (Under mx.util.np_shape a 0 is a size, and the ops check it themselves.)
    if mx.util.is_np_shape():
        return
    for name, array in zip(names, arrays, strict=True):
        shape = getattr(array, 'shape', None)
        if shape is not None and 0 in shape:
            raise mx.base.MXNetError(f'{op_name}: input {name!r} has shape {shape}, with a '
                                     f'zero-size dimension {shape.index(0)}; every '
                                     'dimension must be >= 1')


def _wrap(raw, op_name, is_leaf, identity, auto_variables=(), check_sizes=None):
    @functools.wraps(raw)
    def op(*arrays, **kwargs):
        names = input_names(op_name, kwargs)
        arrays = list(arrays)
        named_here = auto_variables and any(name not in kwargs
                                            for name in names[len(arrays):])
        if named_here:
            # Take the node's name now, so the variables can be named after it.
            kwargs['name'] = mx.name.NameManager.current.get(kwargs.get('name'),
                                                             op_name.lower())
        for name in names[len(arrays):]:
            if name not in kwargs:
                if name not in auto_variables:
                    raise TypeError(f"{op_name}: missing input '{name}'")
                kwargs[name] = mx.sym.var(f"{kwargs['name']}_{name}")
            arrays.append(kwargs.pop(name))
        if len(arrays) != len(names):
            raise TypeError(f"{op_name} takes {len(names)} array input(s) {names}, "
                            f"got {len(arrays)}")
        if check_sizes is not None:
            check_sizes(op_name, names, arrays)
        arrays = [identity(a) if is_leaf(a) else a for a in arrays]
        if named_here:
            with mx.name.NameManager():  # the name is final: no second prefix
                return raw(*arrays, **kwargs)
        return raw(*arrays, **kwargs)

    op.raw = raw
    return op


def _named_sym_identity(leaf):
    # Named after the leaf so that tools which group layers by name (counting.profile)
    # see it beside the parameter it copies.
    return mx.sym.identity(leaf, name=leaf.name + '_identity')


def install_wrappers():
    """Replace the generated functions with the wrappers (after mx.library.load)."""
    for op_name in ARRAY_INPUTS:
        for namespace, is_leaf, identity, auto, check_sizes in (
                (mx.nd, _is_nd_leaf, mx.nd.identity, (), _check_nd_sizes),
                (mx.sym, _is_sym_leaf, _named_sym_identity, AUTO_VARIABLES.get(op_name, ()),
                 None)):
            raw = getattr(namespace.op, op_name)
            raw = getattr(raw, 'raw', raw)
            wrapped = _wrap(raw, op_name, is_leaf, identity, auto, check_sizes)
            setattr(namespace.op, op_name, wrapped)
            setattr(namespace, op_name, wrapped)


COPY_OP = '_copy'          # mx.sym.identity's registered name
COPY_SUFFIX = '_identity'   # the copy of variable v is named v + COPY_SUFFIX


def _copies_added(graph):
    """The JSON graph ``graph`` (as ``Symbol.tojson`` writes it) with a copy between every
    variable and each extension op input that reads it, or None when there is none. One
    copy per variable serves all its extension-op readers."""
    from .rewrite import remap, rewritten_graph
    nodes = graph['nodes']
    if not any(node['op'] in ARRAY_INPUTS and nodes[e[0]]['op'] == 'null'
               for node in nodes for e in node['inputs']):
        return None
    out, position, copies = [], {}, {}

    def through_copy(entry):
        if nodes[entry[0]]['op'] != 'null':
            return remap(entry, position)
        if entry[0] not in copies:
            out.append({'op': COPY_OP, 'name': nodes[entry[0]]['name'] + COPY_SUFFIX,
                        'inputs': [remap(entry, position)]})
            copies[entry[0]] = len(out) - 1
        return [copies[entry[0]], 0, 0]

    for index, node in enumerate(nodes):
        reads = through_copy if node['op'] in ARRAY_INPUTS else \
            functools.partial(remap, position=position)
        node = dict(node, inputs=[reads(e) for e in node['inputs']])
        position[index] = len(out)
        out.append(node)
    return rewritten_graph(graph, out, position)


def with_grad_copies(symbol):
    """``symbol``, or when an extension op of it reads a variable directly, an equal symbol
    (same arguments, auxiliary states and outputs) with an identity copy in between, so
    that MXNet's ``identity`` accumulates the variable's gradient under
    ``grad_req='add'``."""
    graph = _copies_added(json.loads(symbol.tojson()))
    return symbol if graph is None else mx.sym.load_json(json.dumps(graph))


def _asks_add(grad_req):
    """Whether a bind's ``grad_req`` (a string, a list or a dict of them) holds 'add'."""
    if isinstance(grad_req, dict):
        return 'add' in grad_req.values()
    if isinstance(grad_req, (list, tuple)):
        return 'add' in grad_req
    return grad_req == 'add'


def _bind_with_copies(bind, grad_req_position):
    @functools.wraps(bind)
    def hooked(self, *args, **kwargs):
        grad_req = kwargs.get('grad_req', 'write')
        if len(args) > grad_req_position:
            grad_req = args[grad_req_position]
        symbol = with_grad_copies(self) if _asks_add(grad_req) else self
        return bind(symbol, *args, **kwargs)
    hooked.raw = bind
    return hooked


def _cached_op_with_copies(init):
    @functools.wraps(init)
    def hooked(self, sym, *args, **kwargs):
        init(self, with_grad_copies(sym), *args, **kwargs)
    hooked.raw = init
    return hooked


def install_bind_hooks():
    """Bind symbols with copies in front of the extension ops' variables where gradients
    may be added (see the module's docstring)."""
    symbol_class = mx.sym.Symbol
    # positions of grad_req after self: simple_bind(ctx, grad_req), bind(ctx, args,
    # args_grad, grad_req)
    for name, position in (('simple_bind', 1), ('bind', 3)):
        method = getattr(symbol_class, name)
        setattr(symbol_class, name, _bind_with_copies(getattr(method, 'raw', method), position))
    cached_op = mx.nd.CachedOp
    cached_op.__init__ = _cached_op_with_copies(getattr(cached_op.__init__, 'raw',
                                                        cached_op.__init__))


def disable_inplace_grad_sum():
    """Make MXNet sum gradients with ElementWiseSum, never in place into an op's output."""
    value = os.environ.setdefault(INPLACE_SUM_CAP_ENV, NEVER)
    if value != NEVER:
        warnings.warn(f"{INPLACE_SUM_CAP_ENV}={value} is set: MXNet will ask extension ops "
                      "such as Reorder to add gradients in place for tensors with that many "
                      "consumers, which MXNet's extension API cannot honour; their gradients "
                      "would be wrong. Unset it to let igc_mx disable in-place sums.",
                      RuntimeWarning, stacklevel=3)
