"""Rewrite saved symbols from the unfused IGC pattern to the fast operators.

    Reorder(L) -> Convolution(1x1, num_group=M, no_bias) -> Reorder(M)
        becomes  InterleavedGroupConv(primary_partition=L, secondary_partition=M)
    Convolution(num_group=L, no_bias) -> Reorder(L)     (an IGC primary convolution)
        becomes  GroupConvolution(...) -> Reorder(L), where ``group_conv`` says so
        (the builders' rule: 'auto' for <= 16 filters per group, True, False)

With ``device='gpu'`` only the units and convolutions that ``igc_mx.devices`` runs
fast on a GPU are rewritten (``group_conv`` then follows the device too), as the
builders do.

A rewritten node takes the convolution's name and its weight, so the arguments, their
shapes and every checkpoint stay as they were. A weight that is a variable reaches
the fused node through an ``identity`` called ``<weight>_identity``, as
the op wrappers do (see ``_ops``): that keeps ``grad_req='add'``
right.

The fused op computes an IGC unit only: the convolution's ``num_filter`` equals the
channels it reads, C, divisible by L and M. A pattern is fused only when its channels
prove that, known from the shapes MXNet infers (given the input shapes, or
``__shape__`` attributes of the variables) or, without them, from the layers before it
(the ``num_filter`` of the convolution that feeds the unit through channel-keeping
layers such as BatchNorm and Activation). Any other pattern is left as it is and
reported (``skipped``).
"""

import json

import mxnet as mx

from . import blocks, devices, symbol_attrs
from ._library import ensure_loaded

FUSED_OP = 'InterleavedGroupConv'
GROUP_CONV_OP = 'GroupConvolution'


class RewriteError(ValueError):
    """A symbol graph the rewrite cannot read."""


def fuse_igc(symbol, group_conv='auto', device='cpu', shapes=None, skipped=None):
    """A copy of ``symbol`` with every unfused IGC pattern whose channels prove it an IGC
    unit replaced by the fused op, and IGC primary convolutions by GroupConvolution as
    ``group_conv`` says. ``shapes``: {input name: shape}, e.g. {'data': (1, 3, 224, 224)},
    to infer the channels from; ``skipped``: a list that receives (convolution name,
    reason) for every pattern left unfused."""
    ensure_loaded()
    graph = json.loads(symbol.tojson())
    channels = _inferred_channels(symbol, graph, shapes or {})
    return mx.sym.load_json(json.dumps(fuse_igc_graph(graph, group_conv, device, channels,
                                                      skipped)))


def fuse_igc_graph(graph, group_conv='auto', device='cpu', channels=None, skipped=None):
    """The rewrite on a symbol's JSON graph (a dict as ``Symbol.tojson`` writes it);
    ``channels``: {(node index, output index): channels} known from inferred shapes.
    RewriteError when the graph is malformed."""
    devices.check_device(device)
    try:
        return _fuse_igc_graph(graph, group_conv, device, channels or {},
                               skipped if skipped is not None else [])
    except (KeyError, IndexError, TypeError, ValueError, SyntaxError) as err:
        raise RewriteError(f'not a symbol graph the rewrite can read ({type(err).__name__}: '
                           f'{err})') from None


def _fuse_igc_graph(graph, group_conv, device, channels, skipped):
    nodes = [dict(node) for node in graph['nodes']]
    uses = use_counts(nodes, graph['heads'])
    primary = _primary_convs(nodes, group_conv, device)
    seen = _ChannelFinder(nodes, channels)
    out = []              # the rewritten node list, in topological order
    position = {}         # old node index -> index in `out`

    def weight_input(conv):
        """The conv's weight entry in `out`, through an identity if it is a variable."""
        entry = remap(conv['inputs'][1], position)
        variable = nodes[conv['inputs'][1][0]]
        if variable['op'] != 'null':
            return entry
        out.append({'op': '_copy', 'name': variable['name'] + '_identity', 'inputs': [entry]})
        return [len(out) - 1, 0, 0]

    for index, node in enumerate(nodes):
        match = _match(nodes, uses, index)
        if match is not None and not devices.fused(device, int(match[1]['attrs']['num_filter']),
                                                   match[2], match[3]):
            match = None
        if match is not None:
            reason = _not_an_igc_unit(match, seen)
            if reason:
                skipped.append((match[1]['name'], reason))
                match = None
        if match is not None:
            data_entry, conv, L, M = match
            weight_entry = weight_input(conv)
            node = {'op': FUSED_OP, 'name': conv['name'],
                    'attrs': {'primary_partition': str(L), 'secondary_partition': str(M)},
                    'inputs': [remap(data_entry, position), weight_entry]}
        elif index in primary:
            weight_entry = weight_input(node)
            node = dict(node, op=GROUP_CONV_OP,
                        inputs=[remap(node['inputs'][0], position), weight_entry])
        else:
            node = dict(node, inputs=[remap(e, position) for e in node['inputs']])
        position[index] = len(out)
        out.append(node)
    return rewritten_graph(graph, out, position)


def _not_an_igc_unit(match, seen):
    """Why the matched pattern is not provably an IGC unit, or None."""
    data_entry, conv, L, M = match
    c = seen.channels(data_entry)
    if c is None:
        return ('the channels it reads are unknown (give the input shapes: '
                'igc-fuse-symbol --data-shape)')
    filters = int(conv['attrs']['num_filter'])
    if filters != c or c % L or c % M:
        return (f'{filters} filters over {c} channels with L={L}, M={M}: an IGC unit has '
                'as many filters as channels, divisible by L and M')
    return None


# Layers whose output has the channels of their first input (NCHW).
CHANNEL_KEEPING = {'BatchNorm', 'Activation', 'LeakyReLU', 'Dropout', 'Reorder', '_copy',
                   'identity', 'Pooling', 'Cast', 'relu', 'sigmoid', 'tanh', 'clip',
                   'elemwise_add', 'elemwise_sub', 'elemwise_mul', '_Plus', '_plus', '_Minus',
                   '_minus', '_Mul', '_mul', 'broadcast_add', 'broadcast_mul', '_plus_scalar',
                   '_mul_scalar', 'InterleavedGroupConv', 'BlockGrad', 'make_loss'}
FILTERING = {'Convolution', 'GroupConvolution', 'Deconvolution'}


class _ChannelFinder:
    """The channels (dimension 1) of node outputs: inferred ones first, else from the
    graph: ``num_filter`` of convolutions, carried through channel-keeping layers, the
    sum over a Concat, a variable's ``__shape__``."""

    def __init__(self, nodes, inferred):
        self.nodes, self.inferred, self.memo = nodes, inferred, {}

    def channels(self, entry):
        key = (entry[0], entry[1] if len(entry) > 1 else 0)
        if key in self.inferred:
            return self.inferred[key]
        if key not in self.memo:
            self.memo[key] = None     # a cycle (malformed graph) stays unknown
            self.memo[key] = self._from_graph(key)
        return self.memo[key]

    def _from_graph(self, key):
        node = self.nodes[key[0]]
        op, attrs = node['op'], node.get('attrs', {})
        if op == 'null':
            shape = symbol_attrs.ints(attrs, '__shape__', ())
            return int(shape[1]) if len(shape) > 1 and int(shape[1]) > 0 else None
        if op in FILTERING and key[1] == 0:
            return int(attrs['num_filter'])
        if op in CHANNEL_KEEPING and node['inputs'] and key[1] == 0:
            return self.channels(node['inputs'][0])
        if op == 'Concat' and symbol_attrs.integer(attrs, 'dim', 1) == 1:
            parts = [self.channels(e) for e in node['inputs']]
            return None if None in parts else sum(parts)
        return None


def _inferred_channels(symbol, graph, shapes):
    """{(node index, output index): channels} of every 4-D output MXNet's shape inference
    finds from ``shapes`` (and the variables' ``__shape__`` attributes)."""
    declared = any(n['op'] == 'null' and '__shape__' in n.get('attrs', {})
                   for n in graph['nodes'])
    if not shapes and not declared:
        return {}    # nothing to infer from (and the ops' inference wants known inputs)
    internals = symbol.get_internals()
    try:
        _, out_shapes, _ = internals.infer_shape_partial(**shapes)
    except mx.base.MXNetError as err:
        if not shapes:
            return {}
        raise RewriteError(f'shape inference failed for {shapes}: '
                           f'{str(err).strip().splitlines()[-1]}') from None
    by_name = dict(zip(internals.list_outputs(), out_shapes or [], strict=bool(out_shapes)))
    found = {}
    for index, node in enumerate(graph['nodes']):
        names = ([(node['name'], 0)] if node['op'] == 'null' else
                 [(node['name'] + '_output', 0)] +
                 [(f"{node['name']}_output{k}", k) for k in range(8)])
        for name, out in names:
            shape = by_name.get(name)
            if shape and len(shape) == 4 and shape[1] > 0:
                found[(index, out)] = int(shape[1])
    return found


def count_fused(symbol, op=FUSED_OP):
    """Number of ``op`` nodes (by default fused IGC nodes) in ``symbol``."""
    return sum(n['op'] == op for n in json.loads(symbol.tojson())['nodes'])


def _primary_convs(nodes, group_conv, device='cpu'):
    """Indices of the IGC primary convolutions to run as GroupConvolution: a grouped,
    bias-free, undilated NCHW Convolution read by a Reorder of its own group count."""
    found = set()
    for node in nodes:
        if node['op'] != 'Reorder':
            continue
        conv_id, conv_out = node['inputs'][0][:2]
        conv = nodes[conv_id]
        attrs = conv.get('attrs', {})
        if conv['op'] != 'Convolution' or conv_out != 0 or len(conv['inputs']) != 2:
            continue
        groups = symbol_attrs.integer(attrs, 'num_group', 1)
        if (groups < 2 or groups != int(node['attrs']['branch_factor'])
                or not symbol_attrs.flag(attrs, 'no_bias', False)
                or len(symbol_attrs.ints(attrs, 'kernel', ())) != 2
                or symbol_attrs.ints(attrs, 'dilate', (1, 1)) != (1, 1)
                or attrs.get('layout', 'NCHW') not in ('NCHW', 'None')):
            continue
        filters = int(attrs['num_filter'])
        rule = group_conv if device == 'cpu' else devices.group_conv(device, filters, groups)
        if blocks.primary_conv_op(rule, filters // groups) is mx.sym.GroupConvolution:
            found.add(conv_id)
    return found


def _match(nodes, uses, index):
    """(data entry, weight entry, conv node, L, M) if ``nodes[index]`` closes the
    pattern, else None. The convolution and the first Reorder must feed nothing else
    (the first Reorder may: it then stays in the graph for its other consumers)."""
    last = nodes[index]
    if last['op'] != 'Reorder':
        return None
    conv_id, conv_out = last['inputs'][0][:2]
    conv = nodes[conv_id]
    if conv['op'] != 'Convolution' or conv_out != 0 or uses[conv_id] != 1:
        return None
    if len(conv['inputs']) != 2 or not _is_pointwise_group_conv(conv.get('attrs', {})):
        return None
    first_id, first_out = conv['inputs'][0][:2]
    first = nodes[first_id]
    if first['op'] != 'Reorder' or first_out != 0:
        return None
    L = int(first['attrs']['branch_factor'])
    M = int(last['attrs']['branch_factor'])
    if int(conv['attrs'].get('num_group', 1)) != M:
        return None
    return first['inputs'][0], conv, L, M


def _is_pointwise_group_conv(attrs):
    ones = {(1, 1)}
    return (symbol_attrs.ints(attrs, 'kernel', ()) in ones
            and symbol_attrs.ints(attrs, 'stride', (1, 1)) in ones
            and symbol_attrs.ints(attrs, 'dilate', (1, 1)) in ones
            and symbol_attrs.ints(attrs, 'pad', (0, 0)) == (0, 0)
            and symbol_attrs.flag(attrs, 'no_bias', False)
            and attrs.get('layout', 'NCHW') in ('NCHW', 'None'))


def use_counts(nodes, heads):
    uses = [0] * len(nodes)
    for node in nodes:
        for entry in node['inputs']:
            uses[entry[0]] += 1
    for entry in heads:
        uses[entry[0]] += 1
    return uses


def remap(entry, position):
    return [position[entry[0]], *entry[1:]]


def _drop_unreachable(nodes, heads):
    """Nodes reachable from the heads, in their order, with entries renumbered."""
    keep, stack = set(), [e[0] for e in heads]
    while stack:
        i = stack.pop()
        if i not in keep:
            keep.add(i)
            stack.extend(e[0] for e in nodes[i]['inputs'])
    new_index = {old: new for new, old in enumerate(sorted(keep))}
    kept = [dict(nodes[old], inputs=[[new_index[e[0]], *e[1:]] for e in nodes[old]['inputs']])
            for old in sorted(keep)]
    return kept, [[new_index[e[0]], *e[1:]] for e in heads]


# ----------------------------------------------------------------------------- inverse

def unfuse_igc(symbol, data_shape=None):
    """A copy of ``symbol`` in the original's ops: every InterleavedGroupConv becomes
    Reorder(L) -> Convolution(1x1, num_group=M, no_bias) -> Reorder(M), every
    GroupConvolution a Convolution, and the ``<weight>_identity`` copies in front of
    them go. Arguments and their shapes stay as they are, as in ``fuse_igc``.

    The 1x1 convolution needs the channel count, which the fused op does not store:
    it is read from the layer that makes the fused op's input (the IGC unit's primary
    convolution), or inferred for the input ``data_shape`` (N, C, H, W) if given."""
    ensure_loaded()
    graph = json.loads(symbol.tojson())
    shapes = {} if data_shape is None else {'data': tuple(data_shape)}
    channels = _inferred_channels(symbol, graph, shapes)
    return mx.sym.load_json(json.dumps(unfuse_igc_graph(graph, channels)))


def unfuse_igc_graph(graph, channels=None):
    """The inverse rewrite on a symbol's JSON graph (see ``fuse_igc_graph``, whose
    ``channels`` this takes too)."""
    nodes = graph['nodes']
    seen = _ChannelFinder(nodes, channels or {})
    out, position = [], {}

    def weight_input(node):
        """The op's weight entry in `out`, skipping an identity that copies a variable."""
        index = node['inputs'][1][0]
        copy = nodes[index]
        if copy['op'] == '_copy' and nodes[copy['inputs'][0][0]]['op'] == 'null':
            return remap(copy['inputs'][0], position)
        return remap(node['inputs'][1], position)

    def reorder(name, entry, groups):
        out.append({'op': 'Reorder', 'name': name, 'inputs': [entry],
                    'attrs': {'branch_factor': str(groups)}})
        return [len(out) - 1, 0, 0]

    for index, node in enumerate(nodes):
        _check_unfusable(node)
        if node['op'] == FUSED_OP:
            attrs = node['attrs']
            L, M = int(attrs['primary_partition']), int(attrs['secondary_partition'])
            # the names blocks.igc_unit gives the unfused unit '<unit>': its fused node
            # is '<unit>_conv2'
            unit = node['name'][:-len('_conv2')] if node['name'].endswith('_conv2') \
                else node['name']
            weight = weight_input(node)
            data = reorder(unit + '_reorder1', remap(node['inputs'][0], position), L)
            C = seen.channels(node['inputs'][0])
            if C is None:
                raise ValueError(f"{FUSED_OP} '{node['name']}': cannot tell its channel "
                                 "count from the graph; give the data shape")
            out.append({'op': 'Convolution', 'name': node['name'], 'inputs': [data, weight],
                        'attrs': {'kernel': '(1, 1)', 'stride': '(1, 1)', 'pad': '(0, 0)',
                                  'num_filter': str(C), 'num_group': str(M),
                                  'no_bias': 'True'}})
            node = {'op': 'Reorder', 'name': unit + '_reorder2',
                    'inputs': [[len(out) - 1, 0, 0]], 'attrs': {'branch_factor': str(M)}}
        elif node['op'] == GROUP_CONV_OP:
            node = dict(node, op='Convolution',
                        inputs=[remap(node['inputs'][0], position), weight_input(node)])
        else:
            node = dict(node, inputs=[remap(e, position) for e in node['inputs']])
        position[index] = len(out)
        out.append(node)
    return rewritten_graph(graph, out, position)


def _check_unfusable(node):
    """ValueError for an extension op that computes more than the original's layer: the
    bias, residual sum or ReLU that igc_mx.inference.optimize folds into it."""
    if node['op'] not in (FUSED_OP, GROUP_CONV_OP):
        return
    attrs = node.get('attrs', {})
    if (not symbol_attrs.flag(attrs, 'no_bias', True)
            or symbol_attrs.flag(attrs, 'with_residual', False)
            or attrs.get('act_type', 'None') != 'None'):
        raise ValueError(f"{node['op']} '{node['name']}' holds a bias, residual or activation "
                         '(a graph optimized for inference): rebuild from the graph it was '
                         'optimized from')


def rewritten_graph(graph, nodes, position):
    """The graph of the rewritten ``nodes``: heads remapped through ``position`` (old
    node index -> new), unreachable nodes dropped, the graph's attributes kept."""
    heads = [remap(e, position) for e in graph['heads']]
    nodes, heads = _drop_unreachable(nodes, heads)
    result = {'nodes': nodes, 'heads': heads,
              'arg_nodes': [i for i, n in enumerate(nodes) if n['op'] == 'null']}
    if 'attrs' in graph:
        result['attrs'] = graph['attrs']
    return result
