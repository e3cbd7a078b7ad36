"""Parameter and multiply-add counts of a network, per layer and per stage.

``profile(symbol, data_shape)`` counts each layer of a symbol (the built-in networks or a
saved file), ``totals`` sums them per stage; ``igc_mx.tools.summary`` prints them.
"""
import dataclasses
import json
import re


class CountError(ValueError):
    """A symbol whose shapes cannot be inferred for the given input."""


@dataclasses.dataclass(frozen=True)
class LayerCount:
    name: str
    op: str
    stage: str       # 'stem', 'stage1', ..., 'head'
    params: int      # learnable arguments (the original's cal_params rule)
    aux: int         # auxiliary states (BatchNorm moving mean/var), not in params
    macs: int        # multiply-adds per image (Convolution and FullyConnected only)


_STAGE_RE = re.compile(r'^g(\d+)(?:_|$)')
_HEAD_OPS = ('Pooling', 'Flatten', 'FullyConnected', 'SoftmaxOutput')


def stage_of(layer_name):
    m = _STAGE_RE.match(layer_name)
    if not m:
        return 'head'
    return 'stem' if m.group(1) == '0' else f'stage{m.group(1)}'


def is_input(name):
    """Inputs that are not parameters: the data and the labels."""
    return name == 'data' or name.endswith('_label')


#: ops that convolve with a (num_filter, C/groups, kh, kw) weight at every output pixel
SPATIAL_CONV_OPS = ('Convolution', 'GroupConvolution')
#: every convolution op a network may hold (InterleavedGroupConv is a 1x1 group conv)
CONV_OPS = SPATIAL_CONV_OPS + ('InterleavedGroupConv',)


def profile(symbol, data_shape):
    """Per-layer parameter, auxiliary-state and multiply-add counts of ``symbol`` for
    one image of shape ``data_shape`` (C, H, W).

    Parameters follow the original's ``utility.cal_params``: every argument but the
    inputs, auxiliary states excluded (the original also counted the one-element
    ``softmax_label`` of its batch-1 shape; we do not). MACs: a convolution costs
    prod(weight shape) * H_out * W_out (Convolution, GroupConvolution), a fully
    connected layer prod(weight shape); InterleavedGroupConv as its 1x1 group conv;
    BatchNorm, ReLU, pooling, additions, Reorder and copies cost nothing.
    """
    shape = (1,) + tuple(data_shape)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=shape)
    if arg_shapes is None:
        raise CountError(f'cannot infer the shapes of the symbol for input {shape}')
    args = dict(zip(symbol.list_arguments(), arg_shapes, strict=True))
    aux = dict(zip(symbol.list_auxiliary_states(), aux_shapes, strict=True))
    internals = symbol.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=shape)
    outputs = dict(zip(internals.list_outputs(), out_shapes, strict=True))

    nodes = json.loads(symbol.tojson())['nodes']
    # The op wrappers put an identity between a parameter and an extension op
    # (igc_mx._ops); count the parameter at the op that uses it.
    names = [node['name'] for node in nodes]
    for index, node in enumerate(nodes):
        if node['op'] == '_copy' and nodes[node['inputs'][0][0]]['op'] == 'null':
            names[index] = nodes[node['inputs'][0][0]]['name']
    layers, stages = [], {}
    for index, node in enumerate(nodes):
        if node['op'] == 'null' or names[index] != node['name']:
            continue
        inputs = [names[i[0]] for i in node['inputs']]
        stage = stage_of(node['name'])
        if stage == 'head' and node['op'] not in _HEAD_OPS:
            # unnamed glue such as '_plus3' belongs where its first operand was made
            stage = next((stages[i[0]] for i in node['inputs'] if i[0] in stages), 'stem')
        stages[index] = stage
        params = sum(_prod(args[n]) for n in inputs if n in args and not is_input(n))
        n_aux = sum(_prod(aux[n]) for n in inputs if n in aux)
        macs = 0
        if node['op'] in SPATIAL_CONV_OPS + ('FullyConnected',):
            weight = args[inputs[1]]
            macs = _prod(weight)
            if node['op'] != 'FullyConnected':
                macs *= _prod(outputs[node['name'] + '_output'][2:])
        elif node['op'] == 'InterleavedGroupConv':
            # the 1x1 group conv it contains: weight (C, C/M) at every pixel
            out = outputs[node['name'] + '_output']
            macs = out[1] * (out[1] // int(node['attrs']['secondary_partition'])) * _prod(out[2:])
        layers.append(LayerCount(node['name'], node['op'], stage,
                                 params, n_aux, macs))
    return layers


def totals(layers):
    """{stage: (params, aux, macs)} in network order (stem, stage1, ..., head), plus
    'total'."""
    sums = {}
    for layer in layers:
        p, a, m = sums.get(layer.stage, (0, 0, 0))
        sums[layer.stage] = (p + layer.params, a + layer.aux, m + layer.macs)
    order = sorted(sums, key=lambda k: (k != 'stem', k == 'head', k))
    out = {k: sums[k] for k in order}
    out['total'] = tuple(sum(v[i] for v in sums.values()) for i in range(3))
    return out


def _prod(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n
