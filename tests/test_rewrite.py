"""Fused IGC units in networks, and the rewrite of saved symbols (igc_mx.rewrite,
tools/fuse_symbol.py): same arguments, same outputs and gradients as the unfused graph."""
import json
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import igc_mx  # noqa: F401  (loads the op library)
from igc_mx import blocks, networks
from igc_mx.rewrite import count_fused, fuse_igc
from igc_mx.tools import fuse_symbol

from conftest import PUBLISHED_SYMBOLS

REPO = Path(__file__).resolve().parents[1]


def structure(symbol, attrs=True):
    """Ops, names, operator attributes (unless ``attrs`` is False) and wiring; variables'
    copied attrs left out."""
    return [(n['op'], n['name'], n['inputs'],
             n.get('attrs') if attrs and n['op'] != 'null' else None)
            for n in json.loads(symbol.tojson())['nodes']]


def bind(symbol, data_shape, seed=0):
    """An executor with float64 random parameters and data, the same for a given seed
    and argument list."""
    exe = symbol.simple_bind(mx.cpu(), data=data_shape, softmax_label=data_shape[:1],
                             type_dict={'data': 'float64'})
    rng = np.random.RandomState(seed)
    for name in symbol.list_arguments():
        arr = exe.arg_dict[name]
        if name == 'softmax_label':
            arr[:] = rng.randint(0, 10, arr.shape)
        elif name.endswith('_weight') and len(arr.shape) > 1:
            arr[:] = rng.normal(0, np.sqrt(2.0 / np.prod(arr.shape[1:])), arr.shape)
        else:
            arr[:] = rng.normal(0.5 if name.endswith('_gamma') else 0, 0.3, arr.shape)
    for name in symbol.list_auxiliary_states():
        exe.aux_dict[name][:] = rng.uniform(0.5, 1.5, exe.aux_dict[name].shape)
    return exe


def assert_same_run(a, b, data_shape, train, rtol):
    ea, eb = bind(a, data_shape), bind(b, data_shape)
    np.testing.assert_allclose(ea.forward(is_train=train)[0].asnumpy(),
                               eb.forward(is_train=train)[0].asnumpy(), rtol=rtol, atol=1e-12)
    if train:
        ea.backward()
        eb.backward()
        for name in a.list_arguments():
            if name not in ('data', 'softmax_label'):
                np.testing.assert_allclose(ea.grad_dict[name].asnumpy(),
                                           eb.grad_dict[name].asnumpy(), rtol=rtol,
                                           atol=1e-10, err_msg=name)


def test_fused_network_trains_like_unfused():
    # resnet_igc L24M2: the first unit of stages 2 and 3 has C/M = 2L (two slabs)
    fused = networks.get_symbol('resnet_igc', 10, 8, 24, 2)
    unfused = networks.get_symbol('resnet_igc', 10, 8, 24, 2, fused=False)
    assert count_fused(fused) == 6 and count_fused(unfused) == 0
    assert fused.list_arguments() == unfused.list_arguments()
    assert fused.list_auxiliary_states() == unfused.list_auxiliary_states()
    assert_same_run(fused, unfused, (2, 3, 32, 32), train=True, rtol=1e-9)


def build(network, *args, **kwargs):
    with mx.name.NameManager():   # fresh counters: the same auto names ('_plus0') each time
        return networks.get_symbol(network, *args, **kwargs)


def test_rewrite_of_unfused_network_is_the_fused_network():
    for network, args in (('resnet_igc', (10, 8, 24, 2)), ('plain_igc', (10, 8, 4, 2)),
                          ('resnet_igc_imgnet_d18', (7, 18, 2, 2))):
        original = build(network, *args, fused=False, group_conv=False)
        assert count_fused(original, 'GroupConvolution') == 0
        # the builders' defaults: fused units, GroupConvolution by the 'auto' rule
        assert structure(fuse_igc(original)) == structure(build(network, *args))
        for group_conv in (True, False):
            assert structure(fuse_igc(original, group_conv=group_conv)) == \
                structure(build(network, *args, group_conv=group_conv))


def unit_graph(data, conv_kwargs, reorder2=2, extra_consumer=False):
    y = mx.sym.Reorder(data, branch_factor=4, name='r1')
    kwargs = dict(kernel=(1, 1), num_filter=8, num_group=2, no_bias=True)
    kwargs.update(conv_kwargs)
    conv = mx.sym.Convolution(y, name='c', **kwargs)
    out = mx.sym.Reorder(conv, branch_factor=reorder2, name='r2')
    return out + conv if extra_consumer else out


@pytest.mark.parametrize('conv_kwargs,reorder2,extra_consumer', [
    ({'kernel': (3, 3), 'pad': (1, 1)}, 2, False),
    ({'no_bias': False}, 2, False),
    ({'stride': (2, 2)}, 2, False),
    ({'num_group': 4}, 2, False),      # second Reorder does not undo the conv's groups
    ({}, 2, True),                     # the conv's output is used elsewhere too
])
def test_other_patterns_are_left_alone(conv_kwargs, reorder2, extra_consumer):
    sym = unit_graph(mx.sym.Variable('data'), conv_kwargs, reorder2, extra_consumer)
    assert count_fused(fuse_igc(sym)) == 0
    assert structure(fuse_igc(sym, group_conv=False)) == structure(sym)


@pytest.mark.parametrize('conv_kwargs,converted', [
    ({}, True),                                      # grouped, read by Reorder(num_group)
    ({'num_group': 4, 'num_filter': 8}, False),      # Reorder(2) does not match 4 groups
    ({'no_bias': False}, False),                     # GroupConvolution has no bias
    ({'dilate': (2, 2)}, False),
    ({'num_filter': 64}, False),                     # 32 filters per group: 'auto' says no
])
def test_primary_conv_rewrite(conv_kwargs, converted):
    data = mx.sym.Variable('data')
    kwargs = dict(kernel=(3, 3), pad=(1, 1), num_filter=8, num_group=2, no_bias=True)
    kwargs.update(conv_kwargs)
    sym = mx.sym.Reorder(mx.sym.Convolution(data, name='c', **kwargs), branch_factor=2)
    out = fuse_igc(sym)
    assert count_fused(out, 'GroupConvolution') == int(converted)
    assert out.list_arguments() == sym.list_arguments()
    if converted:
        rng = np.random.default_rng(0)
        args = {'data': mx.nd.array(rng.standard_normal((2, 4, 5, 5))),
                'c_weight': mx.nd.array(rng.standard_normal((8, 2, 3, 3)))}
        np.testing.assert_allclose(out.eval(**args)[0].asnumpy(), sym.eval(**args)[0].asnumpy(),
                                   rtol=1e-5, atol=1e-5)


def test_first_reorder_with_other_consumers_stays():
    data = mx.sym.Variable('data')
    first = mx.sym.Reorder(data, branch_factor=4, name='r1')
    conv = mx.sym.Convolution(first, kernel=(1, 1), num_filter=8, num_group=2, no_bias=True,
                              name='c')
    sym = mx.sym.Group([mx.sym.Reorder(conv, branch_factor=2, name='r2'), first * 2])
    skipped = []
    assert count_fused(fuse_igc(sym, skipped=skipped)) == 0   # 'data': channels unknown
    assert skipped == [('c', 'the channels it reads are unknown (give the input shapes: '
                              'igc-fuse-symbol --data-shape)')]
    fused = fuse_igc(sym, shapes={'data': (2, 8, 3, 3)})
    assert [n['op'] for n in json.loads(fused.tojson())['nodes']].count('Reorder') == 1
    rng = np.random.default_rng(1)
    x = mx.nd.array(rng.standard_normal((2, 8, 3, 3)))
    w = mx.nd.array(rng.standard_normal((8, 4, 1, 1)))
    for a, b in zip(sym.eval(data=x, c_weight=w), fused.eval(data=x, c_weight=w), strict=True):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)


def test_published_symbols_rewrite_to_same_outputs(published_models_dir):
    for row, relpath in PUBLISHED_SYMBOLS:
        original = mx.sym.load(str(published_models_dir / relpath))
        fused = fuse_igc(original)
        assert fused.list_arguments() == original.list_arguments(), row
        assert fused.list_auxiliary_states() == original.list_auxiliary_states(), row
        shape = (1, 3, 224, 224)
        assert fused.infer_shape(data=shape) == original.infer_shape(data=shape), row
        assert count_fused(fused) == (0 if row.startswith('ResNet') else 16), row
        # 'auto': the 3x3 grouped convs with few enough filters per group, counted
        # in the published file itself (L100M2: 2 per group everywhere; L16M16:
        # 16 per group in stage 1)
        narrow = [n for n in json.loads(original.tojson())['nodes']
                  if n['op'] == 'Convolution' and n['attrs']['kernel'].replace(' ', '') == '(3,3)'
                  and int(n['attrs'].get('num_group', 1)) > 1
                  and int(n['attrs']['num_filter']) // int(n['attrs']['num_group'])
                  <= blocks.AUTO_GROUP_CONV_MAX_PER_GROUP]
        assert count_fused(fused, 'GroupConvolution') == len(narrow), row
        assert len(narrow) == {'IGC-L100M2': 16, 'IGC-L16M16': 4}.get(row, 0), row
    # one IGC row run end to end (ImageNet nets need 224x224 inputs: one is enough time)
    relpath = dict(PUBLISHED_SYMBOLS)['IGC-L4M32']
    original = mx.sym.load(str(published_models_dir / relpath))
    assert_same_run(fuse_igc(original), original, (1, 3, 224, 224), train=True, rtol=1e-7)
    assert_same_run(fuse_igc(original, group_conv=True), original, (1, 3, 224, 224),
                    train=True, rtol=1e-7)


def test_cli_writes_the_fused_symbol(tmp_path):
    source = tmp_path / 'unfused-symbol.json'
    build('plain_igc', 10, 8, 4, 2, fused=False, group_conv=False).save(str(source))
    target = tmp_path / 'out' / 'fused-symbol.json'
    run = subprocess.run([sys.executable, str(REPO / 'tools' / 'fuse_symbol.py'),
                          str(source), str(target)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert '6 IGC unit(s) fused, 6 primary conv(s) as GroupConvolution' in run.stdout
    assert structure(mx.sym.load(str(target))) == \
        structure(build('plain_igc', 10, 8, 4, 2))
    assert sorted(p.name for p in target.parent.iterdir()) == ['fused-symbol.json']


def not_igc_unit(filters, channels=8, L=2, M=2):
    """conv(channels) -> Reorder(L) -> 1x1 Convolution(filters, num_group=M) -> Reorder(M)."""
    x = mx.sym.Convolution(mx.sym.Variable('data'), num_filter=channels, kernel=(3, 3),
                           pad=(1, 1), name='c0')
    x = mx.sym.Reorder(x, branch_factor=L, name='r1')
    x = mx.sym.Convolution(x, num_filter=filters, kernel=(1, 1), num_group=M, no_bias=True,
                           name='c1')
    return mx.sym.Reorder(x, branch_factor=M, name='r2')


@pytest.mark.parametrize('filters,shapes', [(16, None), (16, {'data': (1, 3, 6, 6)}),
                                            (4, None), (4, {'data': (1, 3, 6, 6)})])
def test_pattern_that_is_not_an_igc_unit_is_left_alone(filters, shapes):
    sym = not_igc_unit(filters)
    skipped = []
    fused = fuse_igc(sym, shapes=shapes, skipped=skipped)
    assert count_fused(fused) == 0
    assert skipped == [('c1', f'{filters} filters over 8 channels with L=2, M=2: an IGC unit '
                              'has as many filters as channels, divisible by L and M')]
    shape = (2, 3, 6, 6)
    assert fused.infer_shape(data=shape)[1] == sym.infer_shape(data=shape)[1] == \
        [(2, filters, 6, 6)]
    rng = np.random.default_rng(2)
    args = {'data': mx.nd.array(rng.standard_normal(shape)),
            'c0_weight': mx.nd.array(rng.standard_normal((8, 3, 3, 3))),
            'c0_bias': mx.nd.array(rng.standard_normal(8)),
            'c1_weight': mx.nd.array(rng.standard_normal((filters, 4, 1, 1)))}
    np.testing.assert_allclose(fused.eval(**args)[0].asnumpy(), sym.eval(**args)[0].asnumpy(),
                               rtol=1e-5, atol=1e-5)
    # the IGC unit itself, channels known either way, is fused
    for given in (None, {'data': (1, 3, 6, 6)}):
        assert count_fused(fuse_igc(not_igc_unit(8), shapes=given)) == 1


def test_cli_leaves_a_non_igc_pattern_and_says_so(tmp_path, capsys):
    source, target = tmp_path / 'in-symbol.json', tmp_path / 'out-symbol.json'
    not_igc_unit(16).save(str(source))
    assert fuse_symbol.main([str(source), str(target), '--group-conv', 'false']) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f'{source}: 0 IGC unit(s) fused, 0 primary conv(s) as GroupConvolution -> {target}',
        '  left unfused: c1: 16 filters over 8 channels with L=2, M=2: an IGC unit has as '
        'many filters as channels, divisible by L and M']
    assert structure(mx.sym.load(str(target))) == structure(mx.sym.load(str(source)))


GOOD = {'nodes': [{'op': 'null', 'name': 'data', 'inputs': []},
                  {'op': 'Reorder', 'name': 'r', 'attrs': {'branch_factor': '2'},
                   'inputs': [[0, 0, 0]]}],
        'arg_nodes': [0], 'heads': [[1, 0, 0]]}


def broken(**change):
    graph = json.loads(json.dumps(GOOD))
    for key, value in change.items():
        if key == 'attrs':
            graph['nodes'][1]['attrs'] = value
        elif key == 'op':
            graph['nodes'][1]['op'] = value
        else:
            graph[key] = value
    return json.dumps(graph)


@pytest.mark.parametrize('content,message', [
    (None, 'cannot read (No such file or directory)'),
    ('', 'not JSON ('),
    (b'\x89PNG\r\n\x1a\n\x00\xff', 'not JSON ('),
    ('{"nodes": [', 'not JSON ('),
    ('[1, 2]', 'not an MXNet symbol file (no "nodes" and "heads")'),
    ('{"nodes": []}', 'not an MXNet symbol file (no "nodes" and "heads")'),
    (broken(heads=[[7, 0, 0]]), 'MXNet cannot load it as a symbol ('),
    (broken(op='NoSuchOperator'), 'MXNet cannot load it as a symbol ('),
    (broken(attrs={'branch_factor': 'abc'}), 'MXNet cannot load it as a symbol ('),
    (broken(attrs={}), "MXNet cannot load it as a symbol ("),
])
def test_malformed_input_is_a_one_line_error(content, message, tmp_path, capsys):
    source = tmp_path / 'in-symbol.json'
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        source.write_text(content)
    assert fuse_symbol.main([str(source), str(tmp_path / 'out.json')]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'fuse_symbol: error: {source}: {message}') or \
        err.startswith(f'fuse_symbol: error: {message}'), err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert not (tmp_path / 'out.json').exists()


def test_bad_shape_and_unwritable_target_are_one_line_errors(tmp_path, capsys):
    source = tmp_path / 'in-symbol.json'
    not_igc_unit(8).save(str(source))
    assert fuse_symbol.main([str(source), str(tmp_path / 'o.json'), '--data-shape',
                             '1,3,6']) == 1
    err = capsys.readouterr().err
    assert err.startswith("fuse_symbol: error: shape inference failed for {'data': (1, 3, 6)}: "
                          "MXNetError: Error in operator c0: ") and err.count('\n') == 1
    (tmp_path / 'file').write_text('')
    assert fuse_symbol.main([str(source), str(tmp_path / 'file' / 'o.json')]) == 1
    err = capsys.readouterr().err
    assert err == (f"fuse_symbol: error: target {tmp_path / 'file' / 'o.json'} lies under "
                   f"{tmp_path / 'file'}, which is a file, not a folder\n"), err
    with pytest.raises(SystemExit) as exit_:
        fuse_symbol.main([str(source), str(tmp_path / 'o.json'), '--data-shape', '1,x'])
    assert exit_.value.code == 2
    assert "expected positive comma-separated sizes such as 1,3,224,224, got '1,x'" in \
        capsys.readouterr().err
