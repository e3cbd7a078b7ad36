"""The network registry and builders: published ImageNet symbols, CIFAR parameter counts,
depth and partition checks, forward/backward, the fast ops in the builders, the
network/*.py entry points, and tools/summary.py."""
import functools
import importlib
import inspect
import itertools
import json
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (registers Reorder)
from igc_mx import blocks, counting, networks
from igc_mx.tools import summary

import published_facts

REPO = Path(__file__).resolve().parents[1]

IMAGENET = (1, 3, 224, 224)


def entry(name):
    return functools.partial(networks.get_symbol, name)


def build_row(row, **kwargs):
    return entry(row.network)(1000, 18, row.primary_partition, row.secondary_partition,
                              **kwargs)


def shapes(symbol, data_shape):
    args, _, aux = symbol.infer_shape(data=data_shape)
    return (dict(zip(symbol.list_arguments(), args, strict=True)),
            dict(zip(symbol.list_auxiliary_states(), aux, strict=True)))


def learnable(symbol, data_shape=(1, 3, 32, 32)):
    args, _ = shapes(symbol, data_shape)
    return sum(int(np.prod(s)) for n, s in args.items() if not counting.is_input(n))


# ------------------------------------------------------------ the registry

# The original four parameters first, then this project's options.
ORIGINAL_SIGNATURES = {
    'plain': ['num_classes', 'depth', 'primary_partition', 'secondary_partition', 'device'],
    'plain_igc': ['num_classes', 'depth', 'primary_partition', 'secondary_partition',
                  'fused', 'group_conv', 'device'],
    'resnet': ['num_classes', 'depth', 'primary_partition', 'secondary_partition', 'device'],
    'resnet_igc': ['num_classes', 'depth', 'primary_partition', 'secondary_partition',
                   'fused', 'group_conv', 'device'],
    'resnet_imgnet_d18': ['num_classes', 'depth', 'primary_partition', 'secondary_partition',
                          'device'],
    'resnet_igc_imgnet_d18': ['num_classes', 'depth', 'primary_partition',
                              'secondary_partition', 'widen', 'fused', 'group_conv', 'device'],
}


def test_list_networks_names_the_six_original_networks():
    builtin = [n for n in networks.list_networks() if networks.registered(n).source == 'igc_mx']
    assert builtin == sorted(ORIGINAL_SIGNATURES)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        networks.get_symbol('resnet50', 10, 20, 4)
    message = str(error.value)
    assert "unknown network 'resnet50'" in message
    assert all(name in message for name in networks.list_networks())


def test_defaults_come_from_the_table():
    # resnet_imgnet_d18: 1000 classes, depth 18, C=64 (torchvision's resnet18 has 11,689,512)
    assert learnable(networks.get_symbol('resnet_imgnet_d18'), IMAGENET) == 11_689_512
    # resnet_igc_imgnet_d18: L=100, M=None -> IGC-L100M2
    assert shapes(networks.get_symbol('resnet_igc_imgnet_d18'), IMAGENET) == \
        shapes(networks.get_symbol('resnet_igc_imgnet_d18', 1000, 18, 100, 2,
                                   widen='primary'), IMAGENET)
    # plain and resnet: M=1 when left out or None
    assert shapes(networks.get_symbol('resnet', 10, 20, 16), (1, 3, 32, 32)) == \
        shapes(networks.get_symbol('resnet', 10, 20, 16, 1), (1, 3, 32, 32))
    assert networks.DEFAULTS['resnet_igc_imgnet_d18'] == {
        'num_classes': 1000, 'depth': 18, 'primary_partition': 100}


@pytest.mark.parametrize('name,args,match', [
    ('plain', (), 'plain needs num_classes and depth and primary_partition'),
    ('resnet_igc', (10, 20), 'resnet_igc needs primary_partition'),
    ('resnet_igc', (10, 20, 24), 'needs secondary_partition'),
])
def test_missing_argument_without_default_raises(name, args, match):
    with pytest.raises(ValueError, match=match):
        networks.get_symbol(name, *args)


def test_unknown_option_raises():
    with pytest.raises(ValueError, match="resnet takes no option 'width'; its options are "
                                         "widen, fused, group_conv"):
        networks.get_symbol('resnet', 10, 20, 16, width=3)


USER_NET = """
import mxnet as mx
def get_symbol(num_classes, depth, primary_partition=2, secondary_partition=None, width=4):
    x = mx.sym.FullyConnected(mx.sym.flatten(mx.sym.Variable('data')),
                              num_hidden=width * primary_partition, name='hidden')
    x = mx.sym.FullyConnected(x, num_hidden=num_classes, name='fc')
    return mx.sym.SoftmaxOutput(x, name='softmax')
"""


def test_register_directory_adds_user_networks(tmp_path):
    (tmp_path / 'mlp_user.py').write_text(USER_NET)
    (tmp_path / 'helpers.py').write_text('VALUE = 1\n')          # no get_symbol: skipped
    (tmp_path / '_private.py').write_text('raise RuntimeError\n')  # never imported
    assert networks.register_directory(tmp_path) == ['mlp_user']
    assert 'mlp_user' in networks.list_networks()
    symbol = networks.get_symbol('mlp_user', 3, 1, width=5)   # its own default L=2
    args, _ = shapes(symbol, (1, 3, 4, 4))
    assert args['hidden_weight'] == (10, 48) and args['fc_weight'] == (3, 10)
    with pytest.raises(ValueError, match="mlp_user needs num_classes and depth"):
        networks.get_symbol('mlp_user')
    # loading the directory again replaces the entry; a built-in name cannot be taken
    assert networks.register_directory(tmp_path) == ['mlp_user']
    (tmp_path / 'resnet.py').write_text(USER_NET)
    with pytest.raises(ValueError, match="network 'resnet' is already registered from igc_mx"):
        networks.register_directory(tmp_path)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        networks.register_directory(tmp_path / 'missing')


def test_network_modules_are_thin_entry_points(monkeypatch):
    """network/<name>.py: the original signatures, each one call into the registry."""
    monkeypatch.syspath_prepend(str(REPO))
    package = importlib.import_module('network')
    assert sorted(package.NAMES) == sorted(ORIGINAL_SIGNATURES)
    calls = {'plain': (10, 8, 4), 'plain_igc': (10, 8, 2, 2), 'resnet': (10, 8, 4),
             'resnet_igc': (10, 8, 2, 2), 'resnet_imgnet_d18': (),
             'resnet_igc_imgnet_d18': (1000, 18, 4, 32)}
    for name, args in calls.items():
        get_symbol = importlib.import_module('network.' + name).get_symbol
        assert list(inspect.signature(get_symbol).parameters) == ORIGINAL_SIGNATURES[name]
        built = []
        for build in (get_symbol, functools.partial(networks.get_symbol, name)):
            with mx.name.NameManager():          # the same automatic names ('_plus0', ...)
                built.append(build(*args).tojson())
        assert built[0] == built[1], name


# ------------------------------------------------------------ published ImageNet rows

PUBLISHED = published_facts.load()


@pytest.mark.parametrize('row', networks.PAPER_ROWS, ids=lambda r: r.label)
def test_imagenet_row_matches_published_symbol(row):
    """Name for name and shape for shape, with the layer attributes and per-stage counts,
    against the facts of the authors' file (tests/data/published_symbols.json)."""
    igc = row.network == 'resnet_igc_imgnet_d18'
    original_nodes = {'fused': False, 'group_conv': False} if igc else {}
    published = PUBLISHED[row.label]
    ours = published_facts.facts(build_row(row, **original_nodes))
    assert ours == published
    if igc:
        # the default fused units: same parameters, shapes and counts
        fused = build_row(row)
        assert fused.list_arguments() == list(published['arguments'])
        fused_facts = published_facts.facts(fused)
        for key in ('arguments', 'aux', 'totals'):
            assert fused_facts[key] == published[key], key


def test_committed_facts_are_those_of_the_published_files(published_models_dir):
    assert published_facts.from_files(published_models_dir) == PUBLISHED


def test_imagenet_counts_as_published():
    """Params and MACs of the five rows (FACTS.md, counted from the published files)."""
    expected = {'ResNet-18 C=64': (11.690, 1.81), 'ResNet-18 C=69': (13.542, 2.10),
                'IGC-L4M32': (12.251, 1.94), 'IGC-L16M16': (13.528, 2.27),
                'IGC-L100M2': (8.638, 1.26)}
    for row in networks.PAPER_ROWS:
        params, _, macs = counting.totals(counting.profile(build_row(row), IMAGENET[1:]))['total']
        assert (round(params / 1e6, 3), round(macs / 1e9, 2)) == expected[row.label], row.label
    # torchvision's resnet18 has the same layers: 11,689,512 parameters
    assert learnable(entry('resnet_imgnet_d18')(1000, 18, 64), IMAGENET) == 11_689_512


def test_widen_rules():
    get = entry('resnet_igc_imgnet_d18')
    attrs = get(1000, 18, 100).attr_dict()            # README command: L100M2
    assert attrs['g0_conv']['num_filter'] == '100'
    assert [attrs[f'g{s}_b1_conv1_conv1']['num_group'] for s in (1, 2, 3, 4)] == \
        ['100', '200', '400', '800']
    assert attrs['g1_b1_proj_conv']['stride'] == '(1, 1)'
    # the default fused units carry (L, M) of the 1x1 group conv they replace
    assert {attrs[f'g{s}_b2_conv2_conv2']['secondary_partition'] for s in (1, 2, 3, 4)} \
        == {'2'}
    assert [attrs[f'g{s}_b2_conv2_conv2']['primary_partition'] for s in (1, 2, 3, 4)] == \
        ['100', '200', '400', '800']
    attrs = get(1000, 18, 4, 32, fused=False).attr_dict()           # L4M32
    assert [attrs[f'g{s}_b1_conv1_conv2']['num_group'] for s in (1, 2, 3, 4)] == \
        ['32', '64', '128', '256']
    assert 'g1_b1_proj_conv' not in attrs
    # explicit widen overrides the default derived from secondary_partition
    attrs = get(1000, 18, 10, 4, widen='primary').attr_dict()
    assert attrs['g0_conv']['num_filter'] == '10'
    assert attrs['g4_b1_conv1_conv1']['num_group'] == '80'
    with pytest.raises(ValueError, match='secondary_partition'):
        get(1000, 18, 4, None, widen='secondary')
    with pytest.raises(ValueError, match='widen'):
        get(1000, 18, 4, 2, widen='both')


# ------------------------------------------------------------ CIFAR parameter counts

def conv(k, cin, cout, groups=1):
    return k * k * (cin // groups) * cout


def bn(c):
    return 2 * c


def igc(cin, cout, L, M):
    """3x3 conv with L groups, 1x1 conv with M groups, BN."""
    return conv(3, cin, cout, L) + conv(1, cout, cout, M) + bn(cout)


def plain_count(C, n, K, unit):
    """unit(cin, cout, stage) -> parameters of one one-conv block."""
    total = conv(3, 3, C) + bn(C) + 4 * C * K + K
    cin = C
    for s, w in enumerate((C, 2 * C, 4 * C)):
        for _ in range(n):
            total += unit(cin, w, s)
            cin = w
    return total


def resnet_count(C, n, K, unit1, unit2, shortcut):
    total = conv(3, 3, C) + bn(C) + 4 * C * K + K
    cin = C
    for w in (C, 2 * C, 4 * C):
        for _ in range(n):
            total += unit1(cin, w) + unit2(w, w) + (shortcut(cin, w) if cin != w else 0)
            cin = w
    return total


def test_plain_igc_d38_count_is_the_original_log():
    # the original's log: "network parameters: 0.3172M" (plain_igc, d38, L24, M2, CIFAR-10)
    params = learnable(entry('plain_igc')(10, 38, 24, 2))
    assert '%.4fM' % (params / 1e6) == '0.3172M'
    # 12 blocks per stage; the 1x1 convs have M = 2, 4, 8 groups stage by stage
    assert params == plain_count(48, 12, 10, lambda cin, w, s: igc(cin, w, 24, 2 << s))


@pytest.mark.parametrize('depth,C,K', [(38, 16, 10), (20, 24, 100)])
def test_plain_count(depth, C, K):
    n = (depth - 2) // 3
    expected = plain_count(C, n, K, lambda cin, w, s: conv(3, cin, w) + bn(w))
    assert learnable(entry('plain')(K, depth, C)) == expected


@pytest.mark.parametrize('depth,C,K', [(20, 16, 10), (56, 16, 100)])
def test_resnet_count(depth, C, K):
    n = (depth - 2) // 6
    expected = resnet_count(C, n, K, lambda cin, w: conv(3, cin, w) + bn(w),
                            lambda cin, w: conv(3, cin, w) + bn(w),
                            lambda cin, w: conv(1, cin, w) + bn(w))
    assert learnable(entry('resnet')(K, depth, C)) == expected
    if depth == 20 and K == 10:
        assert expected == 272_474          # the ResNet-20 of He et al., with BN, 0.27M


@pytest.mark.parametrize('depth,L,M', [(20, 24, 2), (32, 8, 4)])
def test_resnet_igc_count_uses_kin_over_L(depth, L, M):
    n = (depth - 2) // 6
    expected = resnet_count(L * M, n, 10,
                            lambda cin, w: igc(cin, w, L, cin // L),   # kin/L, not M
                            lambda cin, w: igc(cin, w, L, w // L),
                            lambda cin, w: conv(1, cin, w, L) + bn(w))
    symbol = entry('resnet_igc')(10, depth, L, M, fused=False)
    assert learnable(symbol) == expected
    assert learnable(entry('resnet_igc')(10, depth, L, M)) == expected
    attrs = symbol.attr_dict()
    assert attrs['g2_b1_p2_two1_conv2']['num_group'] == str(M)
    assert attrs['g2_b1_p2_two1_reorder2']['branch_factor'] == str(M)
    assert attrs['g2_b1_p2_two2_conv2']['num_group'] == str(2 * M)


def test_cifar_heads_and_momentum():
    plain = entry('plain')(10, 8, 4).attr_dict()
    assert plain['g1_b1_bn']['momentum'] == '0.99' and 'fc_score' in plain
    assert 'global_pool' in plain
    res = entry('resnet')(10, 8, 4).attr_dict()
    assert res['g1_b1_p2_two1_bn']['momentum'] == '0.9' and 'fc' in res
    assert res['pool']['global_pool'] == 'True'
    assert float(res['g0_bn']['eps']) == 2e-5


def test_resnet_depth_split_as_original():
    assert networks.cifar_blocks(True, 20) == (3, 3, 3)
    assert networks.cifar_blocks(True, 22) == (3, 3, 4)
    assert networks.cifar_blocks(False, 38) == (12, 12, 12)


# ------------------------------------------------------------ invalid arguments

@pytest.mark.parametrize('name,args', [
    ('plain', (10, 37, 16)), ('plain_igc', (10, 4, 24, 2)), ('resnet', (10, 21, 16)),
    ('resnet_igc', (10, 6, 8, 2)), ('resnet_imgnet_d18', (1000, 34, 64)),
    ('resnet_igc_imgnet_d18', (1000, 50, 4, 32))])
def test_invalid_depth_raises(name, args):
    with pytest.raises(ValueError, match=rf'invalid depth {args[1]}: valid .*\d'):
        entry(name)(*args)


@pytest.mark.parametrize('name,args,match', [
    ('plain_igc', (10, 38, 0, 2), 'primary_partition=0'),
    ('resnet_igc', (10, 20, 8, -2), 'secondary_partition=-2'),
    ('resnet', (10, 20, 2.5), 'primary_partition=2.5'),
    ('plain_igc', (10, 38, 24, None), 'needs secondary_partition'),
    ('resnet_imgnet_d18', (1000, 18, 0), 'primary_partition=0')])
def test_invalid_partition_raises(name, args, match):
    with pytest.raises(ValueError, match=match):
        entry(name)(*args)


def test_non_dividing_partition_pair_is_a_value_error():
    # widen='primary' doubles L per stage: with an odd M, stage 2 gets 2*L*M/2 = 15 input
    # channels for L=6 groups. The builder says so instead of MXNet's shape inference.
    with pytest.raises(ValueError, match=r'stage 2 .*15 input channels.*L=6.*M must be even'):
        networks.get_symbol('resnet_igc_imgnet_d18', 1000, 18, 3, 5, widen='primary')


def test_every_partition_pair_builds_or_raises_value_error():
    """Any (L, M) either builds a network whose shapes MXNet can infer, or is refused
    by the builder with a ValueError: never a symbol that fails later."""
    built = refused = 0
    for L, M in itertools.product(range(1, 7), repeat=2):
        for name, args, kwargs, shape in (
                ('plain_igc', (10, 8, L, M), {}, (1, 3, 32, 32)),
                ('resnet_igc', (10, 8, L, M), {}, (1, 3, 32, 32)),
                ('resnet_igc_imgnet_d18', (10, 18, L, M), {}, (1, 3, 224, 224)),
                ('resnet_igc_imgnet_d18', (10, 18, L, M), {'widen': 'primary'},
                 (1, 3, 224, 224))):
            try:
                symbol = networks.get_symbol(name, *args, **kwargs)
            except ValueError:
                refused += 1
                continue
            _, out_shapes, _ = symbol.infer_shape(data=shape)
            assert out_shapes == [(1, 10)], (name, L, M, kwargs)
            built += 1
    assert built > 100 and refused == 18      # the odd-M pairs of widen='primary'


def test_igc_unit_rejects_non_dividing_partition():
    with pytest.raises(ValueError, match='does not divide'):
        igc_mx.igc_unit(mx.sym.Variable('data'), 'u', 12, (3, 3), (1, 1), (1, 1),
                        primary_partition=5, secondary_partition=2)


# ------------------------------------------------------------ forward and backward

@pytest.mark.parametrize('name,args,shape', [
    ('plain', (10, 8, 4), (2, 3, 32, 32)),
    ('plain_igc', (10, 8, 2, 2), (2, 3, 32, 32)),
    ('resnet', (10, 8, 4), (2, 3, 32, 32)),
    ('resnet_igc', (10, 8, 2, 2), (2, 3, 32, 32)),
    # ImageNet nets end in a 7x7 pooling: 224 input, tiny widths keep it cheap
    ('resnet_imgnet_d18', (7, 18, 4), (1, 3, 224, 224)),
    ('resnet_igc_imgnet_d18', (7, 18, 2, 2), (1, 3, 224, 224)),
    ('resnet_igc_imgnet_d18', (7, 18, 2), (1, 3, 224, 224))],
    ids=['plain', 'plain_igc', 'resnet', 'resnet_igc', 'resnet_imgnet_d18',
         'igc_imgnet_widen_secondary', 'igc_imgnet_widen_primary'])
def test_forward_backward(name, args, shape):
    symbol = entry(name)(*args)
    exe = symbol.simple_bind(mx.cpu(), data=shape, softmax_label=shape[:1])
    rng = np.random.RandomState(0)
    for key, arr in exe.arg_dict.items():
        if key.endswith('_gamma'):
            arr[:] = 1
        elif key.endswith('_weight'):
            fan_in = int(np.prod(arr.shape[1:]))
            arr[:] = rng.normal(0, np.sqrt(2.0 / fan_in), arr.shape)
        elif key == 'data':
            arr[:] = rng.normal(0, 1, arr.shape)
        elif key == 'softmax_label':
            arr[:] = rng.randint(0, args[0], arr.shape)
        else:
            arr[:] = 0
    for arr in exe.aux_dict.values():
        arr[:] = 1 if arr.shape else 0
    out = exe.forward(is_train=True)[0].asnumpy()
    exe.backward()
    assert out.shape == (shape[0], args[0])
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    first = 'g0_weight' if name == 'resnet_imgnet_d18' else 'g0_conv_weight'
    for key in (first, 'fc_weight' if name.startswith('resnet') and 'imgnet' not in name
                else 'fc_score_weight'):
        grad = exe.grad_dict[key].asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, key


# ------------------------------------------------------------ GroupConvolution in the builders

def conv1_ops(symbol):
    nodes = json.loads(symbol.tojson())['nodes']
    return {n['name']: n['op'] for n in nodes if n['name'].endswith('_conv1')}


@pytest.mark.parametrize('network,args,data_shape', [
    ('resnet_igc', (10, 8, 2, 2), (2, 3, 32, 32)),          # CIFAR, widening units included
    ('resnet_igc_imgnet_d18', (7, 18, 2, 2), (1, 3, 224, 224)),
])
def test_builders_with_group_conv_keep_names_and_outputs(network, args, data_shape):
    plain = networks.get_symbol(network, *args, group_conv=False)
    ours = networks.get_symbol(network, *args, group_conv=True)
    assert ours.list_arguments() == plain.list_arguments()
    assert ours.list_auxiliary_states() == plain.list_auxiliary_states()
    assert ours.infer_shape(data=data_shape) == plain.infer_shape(data=data_shape)
    assert set(conv1_ops(ours).values()) == {'GroupConvolution'}
    assert set(conv1_ops(plain).values()) == {'Convolution'}
    # The same parameters give the same outputs and gradients.
    arg_shapes, _, aux_shapes = plain.infer_shape(data=data_shape)
    rng = np.random.default_rng(0)
    args_ = {name: mx.nd.array(rng.standard_normal(shape) * 0.1)
             for name, shape in zip(plain.list_arguments(), arg_shapes, strict=True)}
    args_['softmax_label'] = mx.nd.zeros(data_shape[0])
    aux = {name: mx.nd.ones(shape) for name, shape in zip(plain.list_auxiliary_states(),
                                                          aux_shapes, strict=True)}
    results = []
    for sym in (plain, ours):
        grads = {k: mx.nd.zeros_like(v) for k, v in args_.items()}
        exe = sym.bind(mx.cpu(), {k: v.copy() for k, v in args_.items()}, args_grad=grads,
                       aux_states={k: v.copy() for k, v in aux.items()})
        exe.forward(is_train=True)
        exe.backward()
        results.append((exe.outputs[0].asnumpy(), {k: g.asnumpy() for k, g in grads.items()}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    # every parameter's gradient, the primary convs' (now GroupConvolution) among them
    params = [name for name in plain.list_arguments() if not counting.is_input(name)]
    assert sum(name.endswith('_conv1_weight') for name in params) >= 4
    for name in params:
        np.testing.assert_allclose(results[1][1][name], results[0][1][name],
                                   rtol=1e-3, atol=1e-5, err_msg=name)


def test_builders_auto_uses_group_conv_for_narrow_groups_only():
    ops = conv1_ops(networks.get_symbol('resnet_igc', 10, 8, 24, 2, group_conv='auto'))
    limit = blocks.AUTO_GROUP_CONV_MAX_PER_GROUP
    assert ops['g1_b1_p2_two1_conv1'] == 'GroupConvolution'            # 48 / 24 = 2
    assert ops['g3_b1_p2_two2_conv1'] == ('GroupConvolution' if limit >= 192 // 24
                                          else 'Convolution')            # 8 per group
    with pytest.raises(ValueError, match="group_conv='yes'"):
        networks.get_symbol('resnet_igc', 10, 8, 24, 2, group_conv='yes')


# ------------------------------------------------------------ tools/summary.py

def test_summary_cli(tmp_path):
    out = tmp_path / 'sub' / 'plain_igc-symbol.json'
    run = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'summary.py'), '--network', 'plain_igc',
         '--depth', '38', '--primary-partition', '24', '--secondary-partition', '2',
         '--dataset', 'cifar10', '--save-json', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert '0.3172M parameters' in run.stdout
    for stage in ('stem', 'stage1', 'stage2', 'stage3', 'head'):
        assert f'\n{stage} ' in run.stdout
    saved = mx.sym.load(str(out))
    assert shapes(saved, (1, 3, 32, 32)) == shapes(entry('plain_igc')(10, 38, 24, 2),
                                                   (1, 3, 32, 32))
    assert [p.name for p in out.parent.iterdir()] == [out.name]   # no temporary left


def test_summary_in_process(tmp_path, capsys):
    path = tmp_path / 'r.json'
    entry('resnet_igc_imgnet_d18')(1000, 18, 100).save(str(path))
    assert summary.main(['--symbol-file', str(path)]) == 0
    text = capsys.readouterr().out
    assert '8.6379M parameters' in text and '1.265G multiply-adds' in text
    assert summary.main(['--network', 'resnet_igc_imgnet_d18', '--primary-partition', '16',
                         '--secondary-partition', '16', '--layers']) == 0
    text = capsys.readouterr().out
    assert 'L per stage [16, 16, 16, 16], M per stage [16, 32, 64, 128]' in text
    assert 'g4_b2_conv2_conv2' in text and '13.5283M parameters' in text
    with pytest.raises(SystemExit):
        summary.main(['--network', 'resnet', '--depth', '21', '--primary-partition', '16'])
    assert 'invalid depth 21' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        summary.main(['--network', 'resnet', '--dataset', 'imagenet',
                      '--primary-partition', '16'])


def test_summary_paper_table(published_models_dir):
    table = summary.paper_table(published_models_dir)
    rows = table.splitlines()[2:]
    assert len(rows) == 5 and all(r.endswith('| yes |') for r in rows)


@pytest.mark.parametrize('name,args', [('plain', (10, 8, 4)), ('plain_igc', (10, 8, 4, 2)),
                                       ('resnet', (10, 8, 4)), ('resnet_igc', (10, 8, 4, 2))])
def test_cifar_networks_take_28x28_grey_images(name, args):
    symbol = networks.get_symbol(name, *args)
    assert symbol.infer_shape(data=(2, 1, 28, 28))[1] == [(2, 10)]


def test_plain_head_pools_as_the_original_on_32x32():
    """The plain nets' global pooling equals the original's 8x8 average on 32x32 images."""
    ours = networks.get_symbol('plain', 10, 8, 4)
    nodes = json.loads(ours.tojson())
    for node in nodes['nodes']:
        if node['name'] == 'global_pool':
            node['attrs']['global_pool'] = 'False'
    original = mx.sym.load_json(json.dumps(nodes))
    rng = np.random.RandomState(0)
    arg_shapes, _, aux_shapes = ours.infer_shape(data=(2, 3, 32, 32))
    args = {n: mx.nd.array(rng.randn(*s)) for n, s in
            zip(ours.list_arguments(), arg_shapes, strict=True)}
    aux = {n: mx.nd.array(rng.rand(*s) + 0.5) for n, s in
           zip(ours.list_auxiliary_states(), aux_shapes, strict=True)}
    outputs = [s.bind(mx.cpu(), args, aux_states=aux).forward()[0].asnumpy()
               for s in (ours, original)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
