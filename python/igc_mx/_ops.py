"""Python faces of the extension ops in ``mx.nd`` and ``mx.sym``.

MXNet's extension API does not tell a library the gradient request (write /
add) of its outputs, so an op cannot honour ``grad_req='add'`` by itself.
MXNet hands ``add`` only to the op that writes the gradient of a leaf (a
variable, a parameter, an array with ``attach_grad``). The wrappers below put
an ``identity`` between such a leaf and the op: MXNet's own ``identity``
backward then does the accumulation, and the extension op only ever writes.
Intermediate tensors, the common case inside networks, pass through untouched.

MXNet also hands ``add`` to the producers of a gradient that it sums in place,
which it does for tensors with at least MXNET_EXEC_INPLACE_GRAD_SUM_CAP (default
8) consumers. ``disable_inplace_grad_sum`` turns that off before MXNet builds its
first gradient graph; summing with ElementWiseSum instead costs memory only for
such tensors.
"""
import functools
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


def disable_inplace_grad_sum():
    """Make MXNet sum gradients with ElementWiseSum, never in place into an op's output."""
    value = os.environ.setdefault(INPLACE_SUM_CAP_ENV, NEVER)
    if value != NEVER:
        warnings.warn(f"{INPLACE_SUM_CAP_ENV}={value} is set: MXNet will ask extension ops "
                      "such as Reorder to add gradients in place for tensors with that many "
                      "consumers, which MXNet's extension API cannot honour; their gradients "
                      "would be wrong. Unset it to let igc_mx disable in-place sums.",
                      RuntimeWarning, stacklevel=3)
