"""Rewrite saved symbols from the unfused IGC pattern to the fused operator.

    Reorder(L) -> Convolution(1x1, num_group=M, no_bias) -> Reorder(M)
        becomes  InterleavedGroupConv(primary_partition=L, secondary_partition=M)

The fused node takes the convolution's name and its weight, so the arguments, their
shapes and every checkpoint stay as they were. A weight that is a variable reaches
the fused node through an ``identity`` called ``<weight>_identity``, as
``mx.sym.InterleavedGroupConv`` does (see ``_ops``): that keeps ``grad_req='add'``
right. The pattern needs the convolution's ``num_filter`` to equal its input
channels, as in every IGC unit; the fused op's shape inference rejects anything else.
"""
import ast
import json

import mxnet as mx

from ._library import ensure_loaded

FUSED_OP = 'InterleavedGroupConv'


def fuse_igc(symbol):
    """A copy of ``symbol`` with every unfused IGC pattern replaced by the fused op."""
    ensure_loaded()
    graph = json.loads(symbol.tojson())
    return mx.sym.load_json(json.dumps(fuse_igc_graph(graph)))


def fuse_igc_graph(graph):
    """The rewrite on a symbol's JSON graph (a dict as ``Symbol.tojson`` writes it)."""
    nodes = [dict(node) for node in graph['nodes']]
    uses = _use_counts(nodes, graph['heads'])
    out = []              # the rewritten node list, in topological order
    position = {}         # old node index -> index in `out`
    for index, node in enumerate(nodes):
        match = _match(nodes, uses, index)
        if match is not None:
            data_entry, weight_entry, conv, L, M = match
            weight_entry = _remap(weight_entry, position)
            if nodes[conv['inputs'][1][0]]['op'] == 'null':
                out.append({'op': '_copy', 'name': nodes[conv['inputs'][1][0]]['name']
                            + '_identity', 'inputs': [weight_entry]})
                weight_entry = [len(out) - 1, 0, 0]
            node = {'op': FUSED_OP, 'name': conv['name'],
                    'attrs': {'primary_partition': str(L), 'secondary_partition': str(M)},
                    'inputs': [_remap(data_entry, position), weight_entry]}
        else:
            node = dict(node, inputs=[_remap(e, position) for e in node['inputs']])
        position[index] = len(out)
        out.append(node)
    heads = [_remap(e, position) for e in graph['heads']]
    out, heads = _drop_unreachable(out, heads)
    result = {'nodes': out, 'heads': heads,
              'arg_nodes': [i for i, n in enumerate(out) if n['op'] == 'null']}
    if 'attrs' in graph:
        result['attrs'] = graph['attrs']
    return result


def count_fused(symbol):
    """Number of fused IGC nodes in ``symbol``."""
    return sum(n['op'] == FUSED_OP for n in json.loads(symbol.tojson())['nodes'])


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
    return first['inputs'][0], conv['inputs'][1], conv, L, M


def _is_pointwise_group_conv(attrs):
    def value(key, default):
        text = attrs.get(key)
        return default if text is None else ast.literal_eval(text.replace('true', 'True')
                                                              .replace('false', 'False'))
    ones = {(1, 1)}
    return (tuple(value('kernel', ())) in ones and tuple(value('stride', (1, 1))) in ones
            and tuple(value('dilate', (1, 1))) in ones
            and tuple(value('pad', (0, 0))) == (0, 0)
            and bool(value('no_bias', False))
            and attrs.get('layout', 'NCHW') in ('NCHW', 'None'))


def _use_counts(nodes, heads):
    uses = [0] * len(nodes)
    for node in nodes:
        for entry in node['inputs']:
            uses[entry[0]] += 1
    for entry in heads:
        uses[entry[0]] += 1
    return uses


def _remap(entry, position):
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
