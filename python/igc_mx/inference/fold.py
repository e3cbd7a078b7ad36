"""Folding an inference graph: BatchNorm into the convolution before it, a residual sum
and a ReLU into the extension op before them, the wrappers' identity copies out.

Works on a symbol's JSON graph (a dict as ``Symbol.tojson`` writes it) and a dict of
numpy parameters, both returned new. A BatchNorm at inference computes, per channel,
``y = x * s + t`` with ``s = gamma / sqrt(var + eps)`` (gamma 1 where ``fix_gamma``) and
``t = beta - mean * s``; after a convolution ``x = W * d + b`` that is the convolution
with each output channel's weights scaled by ``s`` and bias ``b * s + t``. Between the
convolution and the BatchNorm may stand Reorders (the original IGC unit: conv ->
Reorder -> BatchNorm): they only permute the channels, so the BatchNorm's channel j
scales the convolution's output channel that the Reorders move to j.
"""
import numpy as np

from .. import symbol_attrs
from ..rewrite import remap, rewritten_graph, use_counts

CONVOLUTIONS = ('Convolution', 'GroupConvolution', 'InterleavedGroupConv')
EXTENSION_CONVOLUTIONS = ('GroupConvolution', 'InterleavedGroupConv')
COPIES = ('_copy', 'identity')


def reorder_source(channels, groups):
    """``source[j]``: the input channel that Reorder(groups) moves to output channel j
    (input channel i * (C/groups) + j' goes to j' * groups + i)."""
    return np.arange(channels).reshape(groups, channels // groups).T.ravel()


def interleaved_rows(channels, secondary):
    """``rows[r]``: the output channel of InterleavedGroupConv's weight row r; row
    g * K + a (K = C / M) is group g's output a, which the op writes to channel a * M + g."""
    k = channels // secondary
    r = np.arange(channels)
    return (r % k) * secondary + r // k


def fold(graph, params, device='cpu'):
    """(graph, params) with every BatchNorm that follows a convolution folded into it
    (on ``device='gpu'`` into ``Convolution`` only: the extension ops' CUDA kernels have
    no bias) and, on the CPU, a residual sum after InterleavedGroupConv as its
    ``with_residual`` input and every ReLU that follows GroupConvolution or
    InterleavedGroupConv as their ``act_type``, and the filters of a Convolution before a
    pooling padded for oneDNN (see ``_pad_before_pooling``). ``params``: {name: numpy
    array} of the arguments and auxiliary states; the result holds the folded weights
    and biases."""
    params = dict(params)
    graph = _fold_batchnorms(graph, params, device)
    if device == 'cpu':
        graph = _fold_sums_and_relus(graph)
        graph = _pad_before_pooling(graph, params)
    return graph, params


# ----------------------------------------------------------------------------- BatchNorm


def _fold_batchnorms(graph, params, device):
    nodes = graph['nodes']
    uses = use_counts(nodes, graph['heads'])
    foldable = CONVOLUTIONS if device == 'cpu' else ('Convolution',)
    alias = {}           # node index -> the entry that replaces its output 0
    folds = {}           # convolution index -> (scale, shift) by its output channel
    for index, node in enumerate(nodes):
        if node['op'] in COPIES and nodes[node['inputs'][0][0]]['op'] == 'null':
            alias[index] = node['inputs'][0]
        elif node['op'] == 'BatchNorm':
            found = _conv_before(nodes, uses, node, foldable)
            if found is not None and found[0] not in folds:
                conv, reorders = found
                folds[conv] = _channel_affine(nodes, node, params, reorders)
                alias[index] = node['inputs'][0]
    readers = _variable_readers(nodes, alias)
    out, position = [], {}
    taken = {n['name'] for n in nodes}
    for index, node in enumerate(nodes):
        if index in alias:
            continue
        node = dict(node, inputs=[_entry(e, alias, position) for e in node['inputs']])
        if index in folds:
            node = _folded_conv(node, folds[index], params, out, readers, taken)
        position[index] = len(out)
        out.append(node)
    heads = [_entry(e, alias, position) for e in graph['heads']]
    return rewritten_graph(dict(graph, heads=heads), out, {i: i for i in range(len(out))})


def _entry(entry, alias, position):
    while entry[0] in alias:
        entry = alias[entry[0]]
    return remap(entry, position)


def _variable_readers(nodes, alias):
    """{variable name: how many nodes read it}, an identity copy's readers counted as
    the variable's own."""
    readers = {}
    for index, node in enumerate(nodes):
        if index in alias:
            continue
        for entry in node['inputs']:
            while entry[0] in alias:
                entry = alias[entry[0]]
            source = nodes[entry[0]]
            if source['op'] == 'null':
                readers[source['name']] = readers.get(source['name'], 0) + 1
    return readers


def _conv_before(nodes, uses, bn, foldable):
    """(convolution index, branch factors) when ``bn`` reads a convolution's only output
    through Reorders (their branch factors, nearest the BatchNorm first) that nothing
    else reads, and the convolution's weight and bias are variables. None where the
    BatchNorm cannot fold."""
    attrs = bn.get('attrs', {})
    if (symbol_attrs.integer(attrs, 'axis', 1) != 1
            or symbol_attrs.flag(attrs, 'output_mean_var', False)):
        return None
    entry, permutations = bn['inputs'][0], []
    while True:
        index, output = entry[0], entry[1]
        node = nodes[index]
        if output != 0 or uses[index] != 1:
            return None
        if node['op'] != 'Reorder':
            break
        permutations.append(int(node['attrs']['branch_factor']))
        entry = node['inputs'][0]
    if node['op'] not in foldable:
        return None
    for parameter in node['inputs'][1:]:
        while nodes[parameter[0]]['op'] in COPIES:
            parameter = nodes[parameter[0]]['inputs'][0]
        if nodes[parameter[0]]['op'] != 'null':
            return None
    return index, permutations


def _channel_affine(nodes, bn, params, reorders):
    """(scale, shift) of the BatchNorm ``bn`` at inference, by the output channel of the
    convolution before it (through the branch factors ``reorders``, nearest first)."""
    attrs = bn.get('attrs', {})
    gamma, beta, mean, var = (params[nodes[e[0]]['name']].astype(np.float64)
                              for e in bn['inputs'][1:5])
    if symbol_attrs.flag(attrs, 'fix_gamma', True):
        gamma = np.ones_like(gamma)
    scale = gamma / np.sqrt(var + symbol_attrs.number(attrs, 'eps', 1e-3))
    shift = beta - mean * scale
    source = np.arange(len(scale))
    for groups in reorders:
        source = reorder_source(len(scale), groups)[source]
    conv_scale, conv_shift = np.empty_like(scale), np.empty_like(shift)
    conv_scale[source], conv_shift[source] = scale, shift
    return conv_scale, conv_shift


def _folded_conv(node, affine, params, out, readers, taken):
    """The convolution ``node`` (inputs already remapped into ``out``) with the affine
    map folded into its weight and bias, new variables appended to ``out``: named as
    the old ones where nothing else reads those (the old ones then drop out of the
    graph), else '<convolution>_weight' or '_bias' made unique."""
    scale, shift = affine
    old = [out[e[0]]['name'] for e in node['inputs'][1:]]
    weight = params[old[0]].astype(np.float64)
    rows = scale
    if node['op'] == 'InterleavedGroupConv':
        rows = scale[interleaved_rows(len(scale), int(node['attrs']['secondary_partition']))]
    bias = params[old[1]].astype(np.float64) if len(old) > 1 else 0.0
    values = {'weight': weight * rows.reshape(-1, *[1] * (weight.ndim - 1)),
              'bias': bias * scale + shift}
    inputs = [node['inputs'][0]]
    for k, (role, value) in enumerate(values.items()):
        if k < len(old) and readers.get(old[k]) == 1:
            name = old[k]
        else:
            name = _fresh(f"{node['name']}_{role}", taken)
        params[name] = value.astype(params[old[0]].dtype)
        out.append({'op': 'null', 'name': name, 'inputs': []})
        inputs.append([len(out) - 1, 0, 0])
    return dict(node, attrs=dict(node.get('attrs', {}), no_bias='False'), inputs=inputs)


def _fresh(name, taken):
    """``name``, or with a numbered suffix where the graph already has it."""
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f'{name}_folded{k}', k + 1
    taken.add(candidate)
    return candidate


# ----------------------------------------------------------------------------- sums, ReLU

SUMS = ('elemwise_add', '_Plus', '_plus', '_add')


def _is_relu(node):
    return (node['op'] == 'Activation' and node.get('attrs', {}).get('act_type') == 'relu') \
        or node['op'] == 'relu'


def _bare(node):
    """Whether ``node`` is an extension convolution with no activation or residual yet."""
    attrs = node.get('attrs', {})
    return (node['op'] in EXTENSION_CONVOLUTIONS and attrs.get('act_type', 'None') == 'None'
            and not symbol_attrs.flag(attrs, 'with_residual', False))


def _residual_fold(nodes, uses, index):
    """(InterleavedGroupConv index, the other operand's entry) where the sum
    ``nodes[index]`` can be computed inside the InterleavedGroupConv that is one of its
    operands; else None. A sum with a Convolution is left to oneDNN, which fuses it
    with the Convolution, and the other operand must come before the op in the graph."""
    node = nodes[index]
    if node['op'] not in SUMS or len(node['inputs']) != 2:
        return None
    for k in (1, 0):
        source, other = node['inputs'][k], node['inputs'][1 - k]
        op = nodes[source[0]]
        if (op['op'] == 'InterleavedGroupConv' and source[1] == 0 and uses[source[0]] == 1
                and _bare(op) and other[0] < source[0]
                and not (nodes[other[0]]['op'] == 'Convolution' and uses[other[0]] == 1)):
            return source[0], other
    return None


def _fold_sums_and_relus(graph):
    """A residual sum of an InterleavedGroupConv and another tensor into the op
    (with_residual), then a ReLU after GroupConvolution or InterleavedGroupConv
    (act_type)."""
    nodes = [dict(n) for n in graph['nodes']]
    uses = use_counts(nodes, graph['heads'])
    alias = {}
    for index, node in enumerate(nodes):
        found = _residual_fold(nodes, uses, index)
        if found is not None:
            op, other = found
            nodes[op] = dict(nodes[op], attrs=dict(nodes[op]['attrs'], with_residual='True'),
                             inputs=[*nodes[op]['inputs'], other])
            alias[index] = node['inputs'][0] if node['inputs'][0][0] == op else \
                node['inputs'][1]
            continue
        if not _is_relu(node):
            continue
        source, output = node['inputs'][0][:2]
        while source in alias:
            source, output = alias[source][:2]
        op = nodes[source]
        if (op['op'] in EXTENSION_CONVOLUTIONS and output == 0 and uses[source] == 1
                and op.get('attrs', {}).get('act_type', 'None') == 'None'):
            nodes[source] = dict(op, attrs=dict(op['attrs'], act_type='relu'))
            alias[index] = [source, 0, 0]
    out, position = [], {}
    for index, node in enumerate(nodes):
        if index in alias:
            continue
        position[index] = len(out)
        out.append(dict(node, inputs=[_entry(e, alias, position) for e in node['inputs']]))
    heads = [_entry(e, alias, position) for e in graph['heads']]
    return rewritten_graph(dict(graph, heads=heads), out, {i: i for i in range(len(out))})


# ----------------------------------------------------------------------------- oneDNN

#: oneDNN's blocked channel layouts hold 8 (AVX2) or 16 (AVX-512) channels a block.
CHANNEL_BLOCK = 16


def _pad_before_pooling(graph, params):
    """A Convolution with a filter count that is not a multiple of CHANNEL_BLOCK, read
    (through a ReLU) by a Pooling only, gets zero filters up to the next multiple, and
    a slice after the Pooling gives its readers the real channels. oneDNN stores such a
    convolution's output in the plain layout, where its convolution and pooling run
    several times slower than in a blocked one: IGC-L100M2's 100-channel stem
    convolution and max pooling took a fifth of the network's time (docs/after_training.md)."""
    nodes = [dict(n) for n in graph['nodes']]
    uses = use_counts(nodes, graph['heads'])
    readers = _variable_readers(nodes, {})
    padded = {}          # pooling index -> channels before padding
    for index, node in enumerate(nodes):
        conv = _padding_candidate(nodes, uses, readers, node)
        if conv is not None:
            padded[index] = _pad_filters(nodes, conv, params)
    out, position = [], {}
    for index, node in enumerate(nodes):
        out.append(dict(node, inputs=[remap(e, position) for e in node['inputs']]))
        position[index] = len(out) - 1
        if index in padded:
            out.append({'op': 'slice_axis', 'name': node['name'] + '_channels',
                        'attrs': {'axis': '1', 'begin': '0', 'end': str(padded[index])},
                        'inputs': [[len(out) - 1, 0, 0]]})
            position[index] = len(out) - 1
    return rewritten_graph(graph, out, position)


def _padding_candidate(nodes, uses, readers, pooling):
    """The index of the Convolution that ``pooling`` reads (through a ReLU), where its
    filters can be padded; else None."""
    attrs = pooling.get('attrs', {})
    if pooling['op'] != 'Pooling' or symbol_attrs.flag(attrs, 'global_pool', False) or \
            attrs.get('pool_type', 'max') not in ('max', 'avg'):
        return None
    index = pooling['inputs'][0][0]
    if _is_relu(nodes[index]) and uses[index] == 1:
        index = nodes[index]['inputs'][0][0]
    conv = nodes[index]
    attrs = conv.get('attrs', {})
    if (conv['op'] != 'Convolution' or uses[index] != 1
            or symbol_attrs.integer(attrs, 'num_group', 1) != 1
            or int(attrs['num_filter']) % CHANNEL_BLOCK == 0):
        return None
    parameters = [nodes[e[0]] for e in conv['inputs'][1:]]
    if any(p['op'] != 'null' or readers.get(p['name']) != 1 for p in parameters):
        return None
    return index


def _pad_filters(nodes, index, params):
    """Zero filters (and biases) up to a multiple of CHANNEL_BLOCK for the Convolution
    ``nodes[index]``; returns its filter count before."""
    conv = nodes[index]
    filters = int(conv['attrs']['num_filter'])
    pad = -filters % CHANNEL_BLOCK
    for entry in conv['inputs'][1:]:
        name = nodes[entry[0]]['name']
        value = params[name]
        params[name] = np.concatenate([value, np.zeros((pad, *value.shape[1:]), value.dtype)])
    conv['attrs'] = dict(conv['attrs'], num_filter=str(filters + pad))
    return filters
