"""The networks as Gluon HybridBlocks (igc_mx.gluon.get_model) against the symbols of
igc_mx.networks.get_symbol: the symbols themselves unchanged by the layout walk that
both share, exports with the symbols' parameters and layers, the same outputs and
gradients from the same parameters, the recipe's initialization, the registry, and
errors.

SYMBOL_DIGESTS pin get_symbol's JSON for every network and option of SYMBOL_CASES. They
were made by the builder before ``networks.plan`` existed (the plain nets' with the global
pooling of their head since); a deliberate change of a symbol regenerates them with
``.venv/bin/python tests/test_gluon_networks.py``."""
import hashlib
import itertools
import json
import re

import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (registers the ops)
from igc_mx import counting, model_files, networks
from igc_mx import gluon as igc_gluon
from igc_mx.training import optim

from conftest import random_params
from test_gluon_layers import gluon_run

_IGC_OPTIONS = ([{}] + [{'fused': f, 'group_conv': g}
                        for f, g in itertools.product((True, False), (False, True, 'auto'))]
                + [{'device': 'gpu'}, {'dtype': 'float16'}])
_PLAIN_OPTIONS = [{}, {'device': 'gpu'}, {'dtype': 'float16'}]
#: {network: [(arguments, [options, ...]), ...]} whose symbols the digests pin
SYMBOL_CASES = {
    'plain': [((10, 8, 4), _PLAIN_OPTIONS), ((100, 20, 16, 2), [{}])],
    'plain_igc': [((10, 8, 4, 2), _IGC_OPTIONS), ((10, 38, 24, 2), [{}])],
    'resnet': [((10, 8, 4), _PLAIN_OPTIONS), ((10, 22, 16), [{}])],
    'resnet_igc': [((10, 8, 4, 2), _IGC_OPTIONS), ((10, 20, 24, 2), [{}])],
    'resnet_imgnet_d18': [((), _PLAIN_OPTIONS), ((1000, 18, 69), [{}])],
    'resnet_igc_imgnet_d18': [((), _IGC_OPTIONS), ((1000, 18, 16, 16), _IGC_OPTIONS),
                              ((10, 18, 4, 2), [{'widen': 'primary'}])],
}
SYMBOL_DIGESTS = {
    'plain': '48c12fba5b336fe2bfd7cf1f4691da73f8d0ef1d2721890673f2ca936c231063',
    'plain_igc': 'a01c51b276162b1961e4f3ec2a5ecf6db530f24fdcc4665cd3f2d4209b79b23f',
    'resnet': '2db484be4049c4bd03a03e2482e63a0a4b4e88802abdfc48d88110d542242b7f',
    'resnet_igc': '46da1a5a0a701c9df2cdef0398efa9b30b70402798040daecb39f256f23630c7',
    'resnet_imgnet_d18': 'd6d1fd45887a2aa9d88b8fd44ccd4819ea36d7b8835cfb83be15ffa8d358b6d5',
    'resnet_igc_imgnet_d18': 'c512b43d9694bf6801158433dc338832aab42f736612f7341244eacf92d02690',
}


def symbol_digest(network):
    """SHA-256 of get_symbol's JSON for each case of ``network``, each built with fresh
    automatic names ('_plus0', ...)."""
    digest = hashlib.sha256()
    for args, options in SYMBOL_CASES[network]:
        for opts in options:
            with mx.name.NameManager():
                text = networks.get_symbol(network, *args, **opts).tojson()
            digest.update(f'{args} {sorted(opts.items(), key=str)}\n{text}\n'.encode())
    return digest.hexdigest()


@pytest.mark.parametrize('network', sorted(SYMBOL_CASES))
def test_symbols_are_unchanged(network):
    assert symbol_digest(network) == SYMBOL_DIGESTS[network]


def test_symbol_cases_cover_every_builtin_network():
    builtin = [n for n in networks.list_networks() if networks.registered(n).source == 'igc_mx']
    assert sorted(SYMBOL_CASES) == builtin


# ------------------------------------------------------------ export = get_symbol

#: the arguments a CIFAR network needs (no default); the ImageNet ones take their defaults
NEEDED = {'plain': (10, 20, 16), 'plain_igc': (10, 20, 24, 2), 'resnet': (10, 20, 16),
          'resnet_igc': (10, 20, 24, 2)}
GRAPHS = {'default': {}, 'original': {'fused': False, 'group_conv': False}}


def is_igc(network):
    return networks.FAMILIES[network].igc


def data_shape(network, batch=1):
    return (batch, *networks.DATA_SHAPES[networks.FAMILIES[network].dataset])


def layers(symbol):
    """(op, name, attrs, input names) of every op node, in graph order. get_symbol names
    the sum of a residual block automatically ('_plus3'), Gluon after the block
    ('g1_b1_plus'): the sums are compared by op and inputs."""
    nodes = json.loads(symbol.tojson())['nodes']
    names = [n['name'] if n['op'] != 'elemwise_add' else 'sum' for n in nodes]
    return [(n['op'], names[i], n.get('attrs', {}), [names[j] for j, *_ in n['inputs']])
            for i, n in enumerate(nodes) if n['op'] != 'null']


EXPORT_CASES = [(network, graph) for network in networks.list_networks()
                for graph in (GRAPHS if is_igc(network) else ['default'])]


@pytest.mark.parametrize('network,graph', EXPORT_CASES, ids=[f'{n}-{g}' for n, g in EXPORT_CASES])
def test_export_is_the_symbol(network, graph, tmp_path):
    """hybridize -> forward -> export writes get_symbol's parameters (names, shapes) and
    layers (both files atomically: nothing else is left); the exported parameters in
    get_symbol's symbol compute what the Gluon network computes."""
    args = NEEDED.get(network, ())
    net = igc_gluon.get_model(network, *args, **GRAPHS[graph])
    net.hybridize()
    shape = data_shape(network)
    x = mx.nd.array(np.random.RandomState(0).normal(size=shape))
    scores = net(x).asnumpy()
    net.export(str(tmp_path / 'net'))
    exported = mx.sym.load(str(tmp_path / 'net-symbol.json'))
    symbol = networks.get_symbol(network, *args, **GRAPHS[graph])
    assert model_files.parameter_shapes(exported, shape) == \
        model_files.parameter_shapes(symbol, shape)
    assert exported.list_arguments() == symbol.list_arguments()[:-1]     # no softmax_label
    assert exported.list_auxiliary_states() == symbol.list_auxiliary_states()
    assert layers(exported) == layers(symbol)[:-1]                        # no SoftmaxOutput
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net-0000.params',
                                                          'net-symbol.json']
    # igc-summary counts the export as the symbol, stage by stage
    assert counting.totals(counting.profile(exported, shape[1:])) == \
        counting.totals(counting.profile(symbol, shape[1:]))
    if networks.FAMILIES[network].dataset == 'imagenet':
        return      # the values: test_outputs_and_gradients_are_the_symbols, on smaller nets
    arg_params, aux_params = model_files.load_params(str(tmp_path / 'net-0000.params'),
                                                     symbol)
    exe = symbol.simple_bind(mx.cpu(), data=shape, grad_req='null')
    exe.copy_params_from(arg_params, aux_params)
    probabilities = exe.forward(is_train=False, data=x)[0].asnumpy()
    softmax = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, softmax / softmax.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('row', networks.PAPER_ROWS, ids=lambda row: row.label)
def test_parameters_are_the_published_files(row, published_models_dir):
    """The Gluon network of each row of the paper's ImageNet table has the parameters
    (names, shapes) of the authors' published symbol file, so their checkpoints load."""
    published = mx.sym.load(str(published_models_dir / row.published))
    args, aux = model_files.parameter_shapes(published, data_shape(row.network))
    net = igc_gluon.Network(networks.plan(row.network, 1000, 18, row.primary_partition,
                                          row.secondary_partition))
    assert {k: p.shape for k, p in net.collect_params().items()} == {**args, **aux}


# ------------------------------------------------------------ same parameters, same values

# small widths; the ImageNet networks need 224x224 for their 7x7 average pooling
SMALL = {'plain': (10, 5, 4), 'plain_igc': (10, 5, 4, 2), 'resnet': (10, 8, 4),
         'resnet_igc': (10, 8, 4, 2), 'resnet_imgnet_d18': (7, 18, 4),
         'resnet_igc_imgnet_d18': (7, 18, 2, 2)}
# both graphs of the CIFAR IGC networks; the ImageNet networks' layers are those of the
# CIFAR ones, named otherwise (test_export_is_the_symbol), and cost 224x224 images
SAME_CASES = [(network, args, graph) for network, args in SMALL.items()
              for graph in (GRAPHS if is_igc(network) and 'imgnet' not in network
                            else ['default'])]


def merged(params):
    args, aux = params
    return {**args, **aux}


def symbol_pass(symbol, params, x, head, is_train):
    """Output, gradients (data included) and statistics of the symbol's executor after a
    forward (and, in training, a backward with ``head``)."""
    exe = symbol.simple_bind(mx.cpu(), data=x.shape, grad_req='write' if is_train else 'null')
    exe.copy_params_from({k: v for k, v in params.items() if k in exe.arg_dict},
                         {k: v for k, v in params.items() if k in exe.aux_dict})
    out = exe.forward(is_train=is_train, data=mx.nd.array(x))[0].asnumpy()
    if not is_train:
        return out, {}, {}
    exe.backward(mx.nd.array(head))
    return (out, {k: g.asnumpy() for k, g in exe.grad_dict.items()},
            {k: a.asnumpy() for k, a in exe.aux_dict.items()})


def gluon_pass(net, x, head, is_train):
    if not is_train:
        return net(mx.nd.array(x)).asnumpy(), {}, {}
    return gluon_run(net, x, head, hybridize=None)


@pytest.mark.parametrize('network,args,graph', SAME_CASES,
                         ids=[f'{n}{a}-{g}' for n, a, g in SAME_CASES])
def test_outputs_and_gradients_are_the_symbols(network, args, graph):
    """With the same parameters: inference outputs, and in training mode the outputs,
    every gradient (data included) and the updated BatchNorm statistics, hybridized and
    (CIFAR; the ImageNet networks have no other layers) imperative. The symbol is
    get_symbol's without its SoftmaxOutput (the Gluon network ends in the scores),
    backpropagating the same head gradient."""
    symbol = networks.get_symbol(network, *args, **GRAPHS[graph]).get_children()[0]
    cifar = networks.FAMILIES[network].dataset == 'cifar'
    shape = data_shape(network, batch=2 if cifar else 1)
    params = merged(random_params(symbol, shape))
    rng = np.random.RandomState(1)
    x = rng.normal(size=shape).astype(np.float32)
    head = rng.normal(size=(shape[0], args[0])).astype(np.float32)
    for is_train in (False, True):
        want = symbol_pass(symbol, params, x, head, is_train)
        for hybridize in (True, False) if cifar else (True,):
            net = igc_gluon.get_model(network, *args, **GRAPHS[graph])
            igc_gluon.set_params(net, params)
            if hybridize:
                net.hybridize()
            got = gluon_pass(net, x, head, is_train)
            where = f'{"hybridized" if hybridize else "imperative"}, is_train={is_train}'
            np.testing.assert_allclose(got[0], want[0], rtol=1e-5,
                                       atol=1e-5 * np.abs(want[0]).max(), err_msg=where)
            for expected, actual in zip(want[1:], got[1:], strict=True):
                assert sorted(actual) == sorted(expected), where
                # the imperative path sums gradients in another order: 1e-4 of the largest
                for name, value in expected.items():
                    np.testing.assert_allclose(actual[name], value, rtol=1e-4,
                                               atol=1e-4 * np.abs(value).max(),
                                               err_msg=f'{name} ({where})')


@pytest.mark.parametrize('network,args', [('plain', (10, 5, 4)),
                                          ('resnet_igc_imgnet_d18', (7, 18, 2, 2))])
def test_initialization_is_modules(network, args):
    """get_model(pretrained=False) draws what Module.init_params draws with the recipe's
    initializer from the same seed (Xavier by name, 'fc' uniform, statistics 0 and 1)."""
    symbol = networks.get_symbol(network, *args)
    mod = mx.mod.Module(symbol, context=mx.cpu())
    shape = data_shape(network)
    mod.bind(data_shapes=[('data', shape)], label_shapes=[('softmax_label', shape[:1])])
    mx.random.seed(11)
    mod.init_params(optim.initializer())
    arg_params, aux_params = mod.get_params()
    mx.random.seed(11)
    net = igc_gluon.get_model(network, *args)
    got = {k: p.data().asnumpy() for k, p in net.collect_params().items()}
    assert sorted(got) == sorted({**arg_params, **aux_params})
    for name, value in {**arg_params, **aux_params}.items():
        np.testing.assert_array_equal(got[name], value.asnumpy(), err_msg=name)
    assert np.all(got['g0_bn_moving_var'] == 1) and np.all(got['g0_bn_gamma'] == 1)


def test_float16_network_graph():
    """dtype='float16' (the GPU graph: the CPU has neither float16 convolutions nor
    float16 extension ops, so no forward here): the casts of get_symbol, float16
    convolution and classifier parameters, float32 BatchNorm."""
    net = igc_gluon.get_model('resnet_igc', 10, 8, 4, 2, dtype='float16', device='gpu')
    symbol = networks.get_symbol('resnet_igc', 10, 8, 4, 2, dtype='float16', device='gpu')
    graph = net(mx.sym.var('data'))
    assert layers(graph) == layers(symbol)[:-1]
    dtypes = {k: np.dtype(p.dtype).name for k, p in net.collect_params().items()}
    arg_types, _, aux_types = symbol.infer_type(data='float32')
    inferred = dict(zip(symbol.list_arguments() + symbol.list_auxiliary_states(),
                        [np.dtype(t).name for t in arg_types + aux_types], strict=True))
    assert dtypes == {k: v for k, v in inferred.items() if k in dtypes}
    assert dtypes['g1_b1_p2_two1_conv1_weight'] == 'float16' == dtypes['fc_bias']
    assert dtypes['g1_b1_p2_two1_bn_moving_var'] == 'float32'


# ------------------------------------------------------------ registry and errors

def test_list_models_names_the_networks():
    assert igc_gluon.list_models() == networks.list_networks()


def tiny_symbol(num_classes, depth, primary_partition=4, secondary_partition=None):
    x = mx.sym.FullyConnected(mx.sym.flatten(mx.sym.var('data')),
                              num_hidden=primary_partition, name='hidden')
    x = mx.sym.FullyConnected(x, num_hidden=num_classes, name='fc')
    return mx.sym.SoftmaxOutput(x, name='softmax')


def tiny_block(num_classes, depth, primary_partition=4, secondary_partition=None):
    net = mx.gluon.nn.HybridSequential(prefix='')
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(primary_partition, prefix='hidden_'),
                mx.gluon.nn.Dense(num_classes, prefix='fc_'))
    return net


def test_registered_gluon_builder(tmp_path):
    networks.register_network('tiny', tiny_symbol, gluon_builder=tiny_block)
    networks.register_network('tiny_symbol_only', tiny_symbol)
    assert 'tiny' in igc_gluon.list_models()
    assert 'tiny_symbol_only' not in igc_gluon.list_models()
    net = igc_gluon.get_model('tiny', 3, 1)                   # tiny_symbol's default L=4
    net.hybridize()
    net(mx.nd.ones((2, 5)))
    net.export(str(tmp_path / 'tiny'))
    exported = mx.sym.load(str(tmp_path / 'tiny-symbol.json'))
    assert model_files.parameter_shapes(exported, (2, 5)) == \
        model_files.parameter_shapes(networks.get_symbol('tiny', 3, 1), (2, 5))
    with pytest.raises(ValueError, match=r"network 'tiny_symbol_only' has no Gluon builder "
                                         r"\(register_network\(\.\.\., gluon_builder=\.\.\.\)\)"):
        igc_gluon.get_model('tiny_symbol_only', 3, 1)
    with pytest.raises(ValueError, match="gluon_builder=3 is not callable"):
        networks.register_network('tiny_bad', tiny_symbol, gluon_builder=3)


@pytest.mark.parametrize('call,message', [
    (lambda: igc_gluon.get_model('resnet50'), "unknown network 'resnet50': valid names are "
                                              + ', '.join(networks.list_networks())),
    (lambda: igc_gluon.get_model('plain_igc', 10, 38, 0, 2),
     'primary_partition=0 must be a positive integer'),
    (lambda: igc_gluon.get_model('resnet_igc_imgnet_d18', 1000, 18, 3, 5, widen='primary'),
     'stage 2 splits its 15 input channels into L=6 groups'),
    (lambda: igc_gluon.get_model('resnet', 10, 21, 16), 'invalid depth 21'),
    (lambda: igc_gluon.get_model('resnet_igc', 10, 20), 'resnet_igc needs primary_partition'),
    (lambda: igc_gluon.get_model('resnet', 10, 20, 16, width=3),
     "resnet takes no option 'width'"),
    (lambda: igc_gluon.get_model('resnet', 10, 20, 16, pretrained=True),
     'pretrained=True: expected False or the path of a .params file'),
])
def test_bad_input_is_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)
    assert '\n' not in str(error.value)


def test_parameters_of_another_network_are_refused(tmp_path):
    def saved(*args):
        """A parameters file of get_symbol('resnet_igc', *args), with plain names."""
        symbol = networks.get_symbol('resnet_igc', *args)
        path = tmp_path / ('-'.join(map(str, args)) + '.params')
        params = merged(random_params(symbol, (1, 3, 32, 32)))
        mx.nd.save(str(path), params)
        return path, set(params)

    def refused(args, path):
        with pytest.raises(model_files.ModelFileError) as error:
            igc_gluon.load_params(igc_gluon.get_model('resnet_igc', *args), path)
        return str(error.value)

    wider, _ = saved(10, 8, 4, 4)
    assert refused((10, 8, 4, 2), wider) == (
        f"{wider}: 'g0_conv_weight' has shape (16, 3, 3, 3); the network needs (8, 3, 3, 3)")
    deeper, deep_names = saved(10, 14, 4, 2)
    shallow, shallow_names = saved(10, 8, 4, 2)
    more = len(deep_names - shallow_names) - 1
    assert re.fullmatch(rf"{deeper}: 'g\S+' and {more} more is not a parameter of the "
                        r'network \(a file of another network\?\)', refused((10, 8, 4, 2), deeper))
    assert re.fullmatch(rf"{shallow}: no 'g\S+' and {more} more, which the network needs .*",
                        refused((10, 14, 4, 2), shallow))
    other_classes, _ = saved(100, 8, 4, 2)
    assert refused((10, 8, 4, 2), other_classes) == (
        f"{other_classes}: 'fc_weight' has shape (100, 32); the network needs (10, 32)")


if __name__ == '__main__':
    for name in sorted(SYMBOL_CASES):
        print(f"    '{name}': '{symbol_digest(name)}',")
